/**
 * Row 2, the stateless peer: the npm `wechat` middleware (node-webot, 2.1.0) on Express 5, with its
 * signature check on (the Token), answering every text push with a fixed text through `res.reply`
 * (it reads the body, parses it with xml2js and renders the reply with its ejs template). Listens
 * on 127.0.0.1:$PORT; GET /healthz answers `ok` once it listens.
 */
import express from 'express';
import wechat from 'wechat';
import { BENCH_TOKEN, FIXED_TEXT } from '../shared.js';

const port = Number(process.env.PORT);
const app = express();
app.get('/healthz', (_req, res) => {
  res.end('ok');
});
app.use(
  '/wechat',
  wechat(BENCH_TOKEN, (_req, res) => {
    res.reply(FIXED_TEXT);
  }),
);
const server = app.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
