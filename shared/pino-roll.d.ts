/**
 * The part of pino-roll 4 (it ships no types) that shared/logger.ts uses, from its README and
 * `pino-roll.js`: an async factory of a Sonic-Boom stream that rolls its file.
 */
declare module 'pino-roll' {
  import type { DestinationStream } from 'pino';

  interface PinoRollOptions {
    /** `<stem>.<ext>`: files are `<stem>.<n>.<ext>`. */
    file: string;
    /** Digits with k, m or g (a bare number: MB). */
    size?: string | number;
    /** 'daily', 'hourly' or milliseconds. */
    frequency?: 'daily' | 'hourly' | number;
    /** Files kept; with `removeOtherLogFiles`, files of earlier runs count too. */
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    /** date-fns format of the period in the name (needs `frequency`): `<stem>.<date>.<n>.<ext>`. */
    dateFormat?: string;
    /** Creates the folder. */
    mkdir?: boolean;
    /** A `current.log` symlink to the file being written, in its folder. */
    symlink?: boolean;
    /** Sonic-Boom: write synchronously. */
    sync?: boolean;
  }

  export default function pinoRoll(options: PinoRollOptions): Promise<DestinationStream & { end(): void; flushSync(): void }>;
}
