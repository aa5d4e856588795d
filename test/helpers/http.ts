/** Real local HTTP servers for the sinks' tests (127.0.0.1, a free port, closed after the test). */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface ReceivedRequest {
  readonly method: string;
  /** Path and query, as the server saw them. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface Receiver {
  /** http://127.0.0.1:<port> */
  readonly base: string;
  readonly requests: ReceivedRequest[];
}

/** A server that records every request and answers with `respond` (default: 204). */
export async function receiver(
  t: TestContext,
  respond: (req: ReceivedRequest, res: ServerResponse) => void = (_req, res) => void res.writeHead(204).end(),
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(received);
      respond(received, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** A server that answers every request with `status` and Location: `location`. */
export function redirector(t: TestContext, status: number, location: string): Promise<Receiver> {
  return receiver(t, (_req, res) => void res.writeHead(status, { location }).end());
}
