/** Requests on one kept-alive connection (node:http with a one-socket Agent), as a drain test needs. */
import { Agent, request as httpRequest } from 'node:http';

/** One request on a keep-alive connection of `agent` (node:http, so the connection is the one reused). */
export function onConnection(
  agent: Agent,
  port: number,
  method: string,
  path: string,
  payload?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
