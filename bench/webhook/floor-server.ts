// The floor of an admission webhook in Node, for bench/webhook/main.ts: the same HTTPS server
// settings as gateway-webhook's (node:https, TLS 1.2+, keep-alive), the request body read whole,
// and one pre-built answer of the size of the webhook's routed answer sent back. Mode "fixed" does
// nothing else; mode "parse" also JSON.parses the body and JSON.stringifies the answer with the
// request's uid (what any webhook in Node must do). What these reach is the most a Node webhook
// gets here; the gap between them and gateway-webhook is its own work (review, patch, metrics, log).
//   node floor-server.cjs '{"port":8443,"cert":"tls.crt","key":"tls.key","answer":"answer.json","mode":"parse"}'
// Prints "ready" once listening; SIGTERM stops it.
import { readFileSync } from 'node:fs';
import https from 'node:https';

const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  port: number;
  cert: string;
  key: string;
  answer: string;
  mode: 'fixed' | 'parse';
};
const answer = readFileSync(cfg.answer, 'utf8');
const template = JSON.parse(answer) as { response: { uid: string } };

const server = https.createServer(
  {
    cert: readFileSync(cfg.cert),
    key: readFileSync(cfg.key),
    minVersion: 'TLSv1.2',
    keepAliveTimeout: 60_000,
  },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = answer;
      if (cfg.mode === 'parse') {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string } };
        body = JSON.stringify({ ...template, response: { ...template.response, uid: review.request.uid } });
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  },
);
server.listen(cfg.port, '127.0.0.1', () => process.stdout.write('ready\n'));
// Kept-alive clients (the API server) would hold a graceful close open: just exit.
process.once('SIGTERM', () => process.exit(0));
