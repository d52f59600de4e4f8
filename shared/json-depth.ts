/**
 * How deeply a JSON text nests, checked before parsing it. JSON.parse takes 100,000 levels, but what
 * handles the value afterwards (msgpack on the MessagePort, Jinja's tojson, schema walks) recurses
 * and overflowed its stack: a 500. So the HTTP front refuses deeper bodies, and the inference thread
 * leaves deeper tool-call arguments (JSON text inside a string field) unparsed. No API body needs
 * more than a few dozen levels; a tool's JSON Schema is the deepest.
 */
export const MAX_JSON_DEPTH = 128;

/** Whether the JSON text opens more than `limit` arrays/objects at once (brackets inside strings skipped). */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c)
        i++; // backslash: skip the escaped character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > limit) return true;
    } else if (code === 0x7d || code === 0x5d) depth--;
  }
  return false;
}
