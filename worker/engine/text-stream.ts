/**
 * Turns generated token bytes into text a client can be sent: whole UTF-8 characters only, and never
 * the beginning of a stop string until it is clear that the stop string is not coming.
 */
import { StringDecoder } from 'node:string_decoder';

export class TextStream {
  private readonly decoder = new StringDecoder('utf8');
  private held = '';
  /** The stop string that ended the text, once one did. */
  private matched: string | undefined;

  constructor(private readonly stops: readonly string[]) {}

  /** True once a stop string was produced; nothing after it is ever emitted. */
  get hitStop(): boolean {
    return this.matched !== undefined;
  }

  /** Which stop string ended the text (the earliest in it), so an API can name it (Anthropic's `stop_sequence`). */
  get matchedStop(): string | undefined {
    return this.matched;
  }

  /** Adds a token's bytes; returns the text that is now safe to emit. */
  push(bytes: Uint8Array): string {
    if (this.hitStop) return '';
    this.held += this.decoder.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const first = this.firstStop();
    if (first !== undefined) {
      this.matched = first.stop;
      const out = this.held.slice(0, first.at);
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
    if (this.hitStop) return '';
    const out = this.held + this.decoder.end();
    this.held = '';
    return out;
  }

  /** The stop string that starts earliest in the held text; at one place, the first listed. */
  private firstStop(): { at: number; stop: string } | undefined {
    let first: { at: number; stop: string } | undefined;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at >= 0 && (first === undefined || at < first.at)) first = { at, stop };
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
