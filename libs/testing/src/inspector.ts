import WebSocket from 'ws';

/** A connection to the inspector of a node process started with `--inspect=127.0.0.1:<port>`. */
export class Inspector {
  private id = 0;

  private constructor(private readonly ws: WebSocket) {}

  static async connect(port: number): Promise<Inspector> {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const url = list[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  call<T = unknown>(method: string, params: object = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      const my = ++this.id;
      const timer = setTimeout(() => {
        this.ws.off('message', onMessage);
        reject(new Error(`inspector ${method} timed out`));
      }, 60_000);
      const onMessage = (data: WebSocket.RawData) => {
        const msg = JSON.parse(data.toString()) as { id?: number; result?: T; error?: { message: string } };
        if (msg.id !== my) return;
        this.ws.off('message', onMessage);
        clearTimeout(timer);
        if (msg.error) reject(new Error(`inspector ${method}: ${msg.error.message}`));
        else resolve(msg.result as T);
      };
      this.ws.on('message', onMessage);
      this.ws.send(JSON.stringify({ id: my, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

export interface HeapAfterGc {
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

/**
 * Runs a full GC in the process, then reads its process.memoryUsage() (MiB): what it retains, as
 * opposed to garbage a lazy GC has not freed yet.
 */
export async function gcAndMeasure(inspectPort: number): Promise<HeapAfterGc> {
  const i = await Inspector.connect(inspectPort);
  try {
    await i.call('HeapProfiler.collectGarbage');
    await i.call('HeapProfiler.collectGarbage');
    const r = await i.call<{ result: { value: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const m = JSON.parse(r.result.value) as Record<keyof HeapAfterGc, number>;
    const mib = (x: number) => x / 1048576;
    return {
      heapUsed: mib(m.heapUsed),
      heapTotal: mib(m.heapTotal),
      external: mib(m.external),
      arrayBuffers: mib(m.arrayBuffers),
      rss: mib(m.rss),
    };
  } finally {
    i.close();
  }
}
