/**
 * Row 1, the limit of this stack: Express 5 answering every POST /wechat with the same reply XML.
 * No signature check, no body parsing: an Express route that writes a fixed body with Node's own
 * `res.end` (no `res.send`, whose ETag hash would only make the limit lower). Listens on
 * 127.0.0.1:$PORT; GET /healthz answers `ok` once it listens.
 */
import express from 'express';
import { FIXED_REPLY_XML } from '../shared.js';

const port = Number(process.env.PORT);
const body = Buffer.from(FIXED_REPLY_XML, 'utf8');
const app = express();
app.get('/healthz', (_req, res) => {
  res.end('ok');
});
app.post('/wechat', (_req, res) => {
  res.setHeader('Content-Type', 'application/xml; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.end(body);
});
const server = app.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
