/** Reads an SSE response body into its `data:` payloads (strings), in order. */
export async function readSseData(response: Response, onEvent?: (data: string) => void): Promise<string[]> {
  const events: string[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (data === '') continue;
      events.push(data);
      onEvent?.(data);
    }
  }
  return events;
}
