/**
 * Who may call a route: API keys (`Authorization: Bearer <key>` or `x-api-key: <key>`), a separate
 * admin key for the admin routes, and public routes (health probes) that need none. With no API key
 * configured the user routes are open, as llama-server's are without `--api-key`. The admin routes
 * need the admin key once any key is configured (closed when only API keys are set). With no key at
 * all they are open only on a server bound to loopback (a local development server): elsewhere a
 * model swap would let anyone who reaches the port load any file, so they answer 403.
 *
 * Keys are compared as SHA-256 digests with a constant-time comparison, so the time a refusal takes
 * says nothing about how much of a guessed key was right: digests are of equal length whatever the
 * key's (timingSafeEqual needs that, and a length check would leak the key's length), and every
 * configured key is compared, so neither does the time say which key matched. A caller is
 * identified to the rate limiter by a digest prefix, never by the key itself.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ErrorCode, SemanticError } from '../../shared/errors.js';

export type RouteAccess = 'public' | 'user' | 'admin';

export interface Caller {
  /** A stable, non-secret id of the key used ('anonymous' when none is needed and none was sent). */
  keyId: string;
  admin: boolean;
}

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/** Whether `presented` equals any of `keys`, comparing against all of them (no early exit). */
function matchesAny(presented: Buffer, keys: readonly Buffer[]): boolean {
  let found = false;
  for (const key of keys) found = timingSafeEqual(presented, key) || found;
  return found;
}

/** The key a request presents, from either header; undefined when it sends none. */
export function presentedKey(headers: ReadonlyMap<string, string>): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.get('authorization') ?? '')?.[1];
  return bearer ?? headers.get('x-api-key')?.trim() ?? undefined;
}

/** Hosts only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return ['127.0.0.1', '::1', 'localhost'].includes(host);
}

export class AccessControl {
  private readonly userKeys: Buffer[];
  private readonly adminKey: Buffer | undefined;

  constructor(
    apiKeys: readonly string[],
    adminKey: string | undefined,
    /** With no key at all, whether the admin routes are open too (a server bound to loopback). */
    private readonly adminOpenWithoutKeys = true,
  ) {
    this.userKeys = apiKeys.map(digest);
    this.adminKey = adminKey === undefined ? undefined : digest(adminKey);
  }

  /** Throws ERR_UNAUTHORIZED (no or unknown key) or ERR_FORBIDDEN (a user key on an admin route). */
  check(headers: ReadonlyMap<string, string>, access: RouteAccess): Caller {
    if (access === 'public') return { keyId: 'public', admin: false };
    if (this.userKeys.length === 0 && this.adminKey === undefined) {
      if (access === 'admin' && !this.adminOpenWithoutKeys)
        throw new SemanticError(ErrorCode.Forbidden, 'The admin routes need --admin-key on a server that listens beyond loopback.');
      return { keyId: 'anonymous', admin: true };
    }
    const key = presentedKey(headers);
    const presented = key === undefined ? undefined : digest(key);
    const admin = presented !== undefined && this.adminKey !== undefined && matchesAny(presented, [this.adminKey]);
    if (admin) return { keyId: `admin:${presented.subarray(0, 6).toString('hex')}`, admin };
    const known = presented !== undefined && matchesAny(presented, this.userKeys);
    if (access === 'admin') {
      if (known) throw new SemanticError(ErrorCode.Forbidden, 'This route needs the admin key.');
      throw new SemanticError(ErrorCode.Unauthorized, 'This route needs the admin key (Authorization: Bearer <key> or x-api-key).');
    }
    if (this.userKeys.length === 0) return { keyId: presented === undefined ? 'anonymous' : `key:${presented.subarray(0, 6).toString('hex')}`, admin: false };
    if (presented === undefined) throw new SemanticError(ErrorCode.Unauthorized, 'No API key: send Authorization: Bearer <key> or x-api-key.');
    if (!known) throw new SemanticError(ErrorCode.Unauthorized, 'Invalid API key.');
    return { keyId: `key:${presented.subarray(0, 6).toString('hex')}`, admin: false };
  }
}
