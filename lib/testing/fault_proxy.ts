/**
 * A TCP proxy on loopback for fault tests: forwards every connection to a target and, on demand,
 * cuts connections in the middle of a call or makes the target answer slowly. It works below
 * gRPC and HTTP/2 (bytes only), so what the client sees is what a dropped network path or an
 * overloaded server looks like.
 *
 *   const proxy = await FaultProxy.start("127.0.0.1:50052");   // clients dial proxy.address
 *   proxy.cutOnNextResponse();     // the next server->client bytes are dropped and both sides closed
 *   proxy.slowFor(3000, 1500);     // for 3 s, every server->client chunk waits 1.5 s
 */

export class FaultProxy {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #open = new Set<() => void>();
  #cutsArmed = 0;
  #cutAfterRequestBytes = Infinity;
  #slowUntil = 0;
  #slowMs = 0;
  /** Connections cut so far. */
  cuts = 0;
  /** Connections accepted so far. */
  connections = 0;

  private constructor(listener: Deno.TcpListener, target: { hostname: string; port: number }) {
    this.#listener = listener;
    this.#target = target;
    void this.#accept();
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to `target` ("host:port"). */
  static start(target: string): Promise<FaultProxy> {
    const i = target.lastIndexOf(":");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return Promise.resolve(
      new FaultProxy(listener, { hostname: target.slice(0, i), port: Number(target.slice(i + 1)) }),
    );
  }

  /** "127.0.0.1:PORT" to dial instead of the target. */
  get address(): string {
    return `127.0.0.1:${this.#listener.addr.port}`;
  }

  /**
   * Arms `count` cuts: each time a server answers (sends bytes to its client) while a cut is
   * armed, those bytes are dropped and that connection is closed on both sides.
   */
  cutOnNextResponse(count = 1): void {
    this.#cutsArmed += count;
  }

  /**
   * Arms one cut of the answer to the next request of at least `bytes` (counted from the client's
   * bytes since the server last answered): the server receives and runs that call, its answer is
   * lost. Aimed at one large RPC (e.g. TrainStep) among small ones.
   */
  cutAnswerToRequestOver(bytes: number): void {
    this.#cutAfterRequestBytes = bytes;
  }

  /** For the next `windowMs`, delays every server->client chunk by `delayMs`. */
  slowFor(windowMs: number, delayMs: number): void {
    this.#slowUntil = Date.now() + windowMs;
    this.#slowMs = delayMs;
  }

  /** Closes the listener and every proxied connection. */
  close(): void {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const close of [...this.#open]) close();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      this.connections++;
      void this.#serve(client);
    }
  }

  async #serve(client: Deno.Conn): Promise<void> {
    let server: Deno.Conn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      client.close();
      return;
    }
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.#open.delete(close);
      for (const c of [client, server]) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    };
    this.#open.add(close);
    // Client bytes since the server last answered: the size of the request(s) being answered.
    let requestBytes = 0;
    const pump = async (from: Deno.Conn, to: Deno.Conn, response: boolean) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await from.read(buffer);
          if (n === null) break;
          if (!response) requestBytes += n;
          if (response) {
            if (requestBytes >= this.#cutAfterRequestBytes) {
              this.#cutAfterRequestBytes = Infinity;
              this.cuts++;
              break;
            }
            requestBytes = 0;
            if (this.#cutsArmed > 0) {
              this.#cutsArmed--;
              this.cuts++;
              break;
            }
            if (Date.now() < this.#slowUntil) await new Promise((r) => setTimeout(r, this.#slowMs));
          }
          let sent = 0;
          while (sent < n) sent += await to.write(buffer.subarray(sent, n));
        }
      } catch {
        // Either side went away: the close below ends the other direction too.
      }
      close();
    };
    await Promise.all([pump(client, server, false), pump(server, client, true)]);
  }
}
