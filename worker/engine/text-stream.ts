/**
 * Turns generated token bytes into text a client can be sent: whole UTF-8 characters only, and never
 * the beginning of a stop string until it is clear that the stop string is not coming.
 */
import { StringDecoder } from 'node:string_decoder';

export class TextStream {
  private readonly decoder = new StringDecoder('utf8');
  private held = '';
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** True once a stop string was produced; nothing after it is ever emitted. */
  get hitStop(): boolean {
    return this.stopped;
  }

  /** Adds a token's bytes; returns the text that is now safe to emit. */
  push(bytes: Uint8Array): string {
    if (this.stopped) return '';
    this.held += this.decoder.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const stopAt = this.firstStop();
    if (stopAt >= 0) {
      this.stopped = true;
      const out = this.held.slice(0, stopAt);
      this.held = '';
      return out;
    }
    const keep = this.longestStopPrefixAtEnd();
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }

  /** At the end of generation: whatever is held is final text (an incomplete stop string is just text). */
  flush(): string {
    if (this.stopped) return '';
    const out = this.held + this.decoder.end();
    this.held = '';
    return out;
  }

  private firstStop(): number {
    let first = -1;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    return first;
  }

  private longestStopPrefixAtEnd(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.held.length); k > longest; k--) {
        if (this.held.endsWith(stop.slice(0, k))) {
          longest = k;
          break;
        }
      }
    }
    return longest;
  }
}
