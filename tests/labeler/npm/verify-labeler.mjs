// Checks a running plyr-core labeler with the client libraries the ATProto ecosystem uses, so
// interoperability is judged by them rather than by our own encoder:
//   node verify-labeler.mjs --url http://127.0.0.1:PORT --expect N
// N is the number of labels emitted into a fresh labeler. Exit 0 only if every check holds.
// tests/labeler/npm_client_test.cpp runs it; run `npm ci` in this folder first.
import { isDeepStrictEqual, parseArgs } from 'node:util';

import api from '@atproto/api';
import atprotoCrypto from '@atproto/crypto';
import identity from '@atproto/identity';
import xrpcServer from '@atproto/xrpc-server';
import * as atcuteCbor from '@atcute/cbor';
import * as atcuteCrypto from '@atcute/crypto';
import * as dagCbor from '@ipld/dag-cbor';
import * as cborg from 'cborg';
import WebSocket from 'ws';

const { AtpAgent, XRPCError, lexicons, ComAtprotoLabelSubscribeLabels } = api;
const { verifySignature } = atprotoCrypto;
const { DidWebResolver, getDidKeyFromMultibase } = identity;
const { Subscription } = xrpcServer;

const SUBSCRIBE = 'com.atproto.label.subscribeLabels';
const OVERALL_TIMEOUT_MS = 60_000;
const STAGE_TIMEOUT_MS = 20_000;
// The Subscription client pings at this interval and drops a connection whose pong is late.
const HEARTBEAT_MS = 2_000;

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// Rejects after `ms` so that no single stage can hang the run.
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const hex = (bytes) => Buffer.from(bytes).toString('hex');

function describe(label) {
  return `${label.uri} ${JSON.stringify(label.val)} cts ${label.cts}${label.neg ? ' neg' : ''}`;
}

// ---------------------------------------------------------------------------------------------
// 1. Identity: the did:web document, resolved the way AppViews resolve it.

async function resolveLabelKey(baseUrl) {
  const port = new URL(baseUrl).port;
  // The DID comes from the server itself; it must be the did:web of this listener, which
  // DidWebResolver fetches over http because the host is localhost.
  const res = await fetch(`${baseUrl}/.well-known/did.json`).catch((err) => {
    throw new CheckFailed(`cannot reach ${baseUrl}: ${err.cause?.message ?? err.message}`);
  });
  check(res.ok, `GET /.well-known/did.json answered ${res.status}`);
  const did = (await res.json()).id;
  const expectedDid = `did:web:localhost%3A${port}`;
  check(did === expectedDid, `did.json id is ${JSON.stringify(did)}, expected ${expectedDid} (start the labeler without --labeler-did)`);

  // ensureResolve checks the document's shape and that its id equals the DID.
  const doc = await new DidWebResolver(5_000).ensureResolve(did);
  // The label key is only ever #atproto_label (the spec forbids falling back to #atproto).
  const method = (doc.verificationMethod ?? []).find((m) => m.id === '#atproto_label' || m.id === `${did}#atproto_label`);
  check(method, 'the DID document has no #atproto_label verification method');
  check(method.type === 'Multikey', `#atproto_label has type ${method.type}, expected Multikey`);
  const didKey = getDidKeyFromMultibase(method);
  check(didKey?.startsWith('did:key:'), `#atproto_label publicKeyMultibase ${method.publicKeyMultibase} is not a usable key`);
  const curve = atcuteCrypto.parseDidKey(didKey).type; // the second stack must read it too

  const service = (doc.service ?? []).find((s) => s.id === '#atproto_labeler' || s.id === `${did}#atproto_labeler`);
  check(service?.type === 'AtprotoLabeler', 'the DID document has no #atproto_labeler service of type AtprotoLabeler');
  check(service.serviceEndpoint === `http://localhost:${port}`,
    `#atproto_labeler endpoint is ${JSON.stringify(service.serviceEndpoint)}, expected http://localhost:${port}`);
  return { did, didKey, curve };
}

// ---------------------------------------------------------------------------------------------
// 2. Signatures, checked by two independent stacks.

// Verifies one label as a consumer would: re-encode exactly the received fields minus `sig`.
async function verifyLabel(label, identityInfo, where) {
  const at = `${where} label ${describe(label)}`;
  check(label.src === identityInfo.did, `${at}: src ${label.src} is not the labeler's DID ${identityInfo.did}`);
  check(label.ver === 1, `${at}: ver is ${label.ver}, expected 1`);
  check(label.neg === undefined || label.neg === true, `${at}: neg is ${label.neg}; it must be omitted unless true`);
  check(label.sig instanceof Uint8Array && label.sig.length === 64,
    `${at}: sig is not 64 bytes (${label.sig?.length})`);
  const { sig, ...unsigned } = label;
  check(!('$type' in unsigned), `${at}: carries a $type, which is not part of the signed label`);

  const ipldBytes = dagCbor.encode(unsigned);
  const atcuteBytes = atcuteCbor.encode(unsigned);
  check(Buffer.from(ipldBytes).equals(Buffer.from(atcuteBytes)),
    `${at}: @ipld/dag-cbor and @atcute/cbor encode it differently: ${hex(ipldBytes)} vs ${hex(atcuteBytes)}`);
  check(await verifySignature(identityInfo.didKey, ipldBytes, sig),
    `${at}: @atproto/crypto verifySignature rejects sig ${hex(sig)} over ${hex(ipldBytes)}`);
  check(await atcuteCrypto.verifySigWithDidKey(identityInfo.didKey, sig, atcuteBytes),
    `${at}: @atcute/crypto verifySigWithDidKey rejects sig ${hex(sig)} over ${hex(atcuteBytes)}`);
}

// ---------------------------------------------------------------------------------------------
// 3. queryLabels through @atproto/api, which validates each page against the Lexicon.

async function queryAll(baseUrl, identityInfo, expect) {
  const agent = new AtpAgent({ service: baseUrl });
  const labels = [];
  let cursor;
  let pages = 0;
  for (;;) {
    check(pages <= expect + 1, `queryLabels keeps paging after ${pages} pages`);
    const { data } = await withTimeout(
      agent.com.atproto.label.queryLabels({ uriPatterns: ['*'], limit: 100, cursor }),
      STAGE_TIMEOUT_MS, 'queryLabels');
    pages += 1;
    check(data.labels.length <= 100, `queryLabels page ${pages} has ${data.labels.length} labels, above the limit 100`);
    labels.push(...data.labels);
    if (data.labels.length === 0) {
      check(data.cursor === undefined, `queryLabels returned cursor ${data.cursor} on an empty page`);
      break;
    }
    check(typeof data.cursor === 'string' && data.cursor !== cursor,
      `queryLabels page ${pages} has ${data.labels.length} labels but cursor ${JSON.stringify(data.cursor)}`);
    cursor = data.cursor;
  }
  check(labels.length === expect, `queryLabels returned ${labels.length} labels in ${pages} pages, expected ${expect}`);
  for (const label of labels) await verifyLabel(label, identityInfo, 'queryLabels');
  return { labels, pages };
}

// ---------------------------------------------------------------------------------------------
// 4. subscribeLabels through @atproto/xrpc-server's Subscription, messages validated by the
//    Lexicon of @atproto/api.

function subscription(wsUrl, cursor, signal, onDrop) {
  return new Subscription({
    service: wsUrl,
    method: SUBSCRIBE,
    getParams: () => ({ cursor }),
    validate: (body) => lexicons.assertValidXrpcMessage(SUBSCRIBE, body),
    signal,
    heartbeatIntervalMs: HEARTBEAT_MS, // shorter than the default 10 s, to see pongs within the test
    maxReconnectSeconds: 1,
    // The client reconnects silently after a dropped connection; on loopback that is a failure.
    onReconnectError: (err) => onDrop(err),
  });
}

async function streamAll(wsUrl, identityInfo, expect, queried) {
  const ac = new AbortController();
  const drop = (err) => ac.abort(new CheckFailed(
    `subscribeLabels: the connection dropped (${err?.code ?? ''} ${err?.message ?? err}); the client would ` +
    `reconnect. A ping left without a pong for ${HEARTBEAT_MS} ms also ends this way`));
  const timer = setTimeout(() => ac.abort(new CheckFailed(
    `subscribeLabels: fewer than ${expect} labels within ${STAGE_TIMEOUT_MS} ms`)), STAGE_TIMEOUT_MS);
  const iterator = subscription(wsUrl, 0, ac.signal, drop)[Symbol.asyncIterator]();

  // Only cheap checks while connected: signature checks take ~10 ms each in pure JS and would
  // block the event loop long enough for the client's own heartbeat to give up.
  const messages = [];
  try {
    while (messages.length < expect) {
      const { value: message, done } = await iterator.next();
      check(!done, `subscribeLabels: the stream closed after ${messages.length} of ${expect} labels`);
      check(ComAtprotoLabelSubscribeLabels.isLabels(message),
        `subscribeLabels: unexpected message ${message.$type}: ${JSON.stringify(message)}`);
      const lastSeq = messages.at(-1)?.seq ?? 0;
      check(message.seq === lastSeq + 1, `subscribeLabels: seq ${message.seq} follows ${lastSeq}; expected ${lastSeq + 1}`);
      check(message.labels.length === 1, `subscribeLabels: seq ${message.seq} carries ${message.labels.length} labels, expected 1`);
      messages.push(message);
    }
    // Stay connected past two heartbeats: no label beyond N may arrive, and pongs must keep the
    // connection alive (a missing pong shows up as a drop).
    const next = iterator.next();
    next.catch(() => {});
    const extra = await Promise.race([next, sleep(2 * HEARTBEAT_MS + 500).then(() => 'quiet')]);
    check(extra === 'quiet', `subscribeLabels: a message arrived after the ${expect} labels: ${JSON.stringify(extra?.value)}`);
  } catch (err) {
    throw ac.signal.aborted && ac.signal.reason instanceof CheckFailed ? ac.signal.reason : err;
  } finally {
    clearTimeout(timer);
    if (!ac.signal.aborted) ac.abort(new Error('done'));
  }

  // Query labels by (uri, val, cts); each stream label must equal one of them, signature included.
  const byKey = new Map();
  for (const label of queried) {
    const key = `${label.uri}\n${label.val}\n${label.cts}`;
    byKey.set(key, [...(byKey.get(key) ?? []), label]);
  }
  for (const { seq, labels: [label] } of messages) {
    await verifyLabel(label, identityInfo, `subscribeLabels seq ${seq}`);
    const candidates = byKey.get(`${label.uri}\n${label.val}\n${label.cts}`) ?? [];
    const at = candidates.findIndex((q) => isDeepStrictEqual({ ...q }, { ...label }));
    check(at >= 0, `subscribeLabels seq ${seq}: ${describe(label)} differs from every queryLabels label ` +
      `with that uri/val/cts (${candidates.length} of them; stream sig ${hex(label.sig)})`);
    candidates.splice(at, 1);
  }
  return messages.length;
}

async function expectFutureCursor(wsUrl, cursor) {
  const ac = new AbortController();
  const drop = (err) => ac.abort(new CheckFailed(`FutureCursor: the connection dropped (${err?.code ?? ''} ${err?.message ?? err})`));
  const timer = setTimeout(() => ac.abort(new CheckFailed(`FutureCursor: no error within ${STAGE_TIMEOUT_MS} ms`)), STAGE_TIMEOUT_MS);
  try {
    for await (const message of subscription(wsUrl, cursor, ac.signal, drop)) {
      throw new CheckFailed(`cursor ${cursor}: got a message instead of FutureCursor: ${JSON.stringify(message)}`);
    }
    throw new CheckFailed(`cursor ${cursor}: the stream closed without an error message`);
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    if (ac.signal.aborted && ac.signal.reason instanceof CheckFailed) throw ac.signal.reason;
    check(err instanceof XRPCError && err.error === 'FutureCursor',
      `cursor ${cursor}: expected XRPCError FutureCursor, got ${err?.constructor?.name} ${err?.error ?? ''} ${err?.message}`);
    return err;
  } finally {
    clearTimeout(timer);
    if (!ac.signal.aborted) ac.abort(new Error('done'));
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Raw frames: Go consumers match header bytes literally and signatures depend on exact bytes,
//    so every message must be canonical DRISL (strict decode, re-encode to the same bytes).

function readRawFrames(wsUrl, cursor, count) {
  return withTimeout(new Promise((resolve, reject) => {
    const frames = [];
    const socket = new WebSocket(`${wsUrl}/xrpc/${SUBSCRIBE}?cursor=${cursor}`);
    socket.on('message', (data, isBinary) => {
      if (!isBinary) return reject(new CheckFailed('raw subscribeLabels: a text message arrived'));
      frames.push(new Uint8Array(data));
      if (frames.length === count) socket.close();
    });
    socket.on('close', (code) => resolve({ frames, code }));
    socket.on('error', reject);
  }), STAGE_TIMEOUT_MS, `raw subscribeLabels cursor=${cursor}`);
}

function splitFrame(bytes, what) {
  const [header, rest] = cborg.decodeFirst(bytes, dagCbor.decodeOptions);
  const body = dagCbor.decode(rest); // strict: one item, no trailing bytes
  const headerBytes = bytes.subarray(0, bytes.length - rest.length);
  check(Buffer.from(dagCbor.encode(header)).equals(Buffer.from(headerBytes)), `${what}: header is not canonical DRISL: ${hex(headerBytes)}`);
  check(Buffer.from(dagCbor.encode(body)).equals(Buffer.from(rest)), `${what}: body is not canonical DRISL`);
  return { header, body };
}

async function checkRawFrames(wsUrl, expect, futureCursor) {
  const { frames } = await readRawFrames(wsUrl, 0, expect);
  check(frames.length === expect, `raw subscribeLabels: ${frames.length} messages, expected ${expect}`);
  frames.forEach((bytes, i) => {
    const { header, body } = splitFrame(bytes, `raw message ${i + 1}`);
    check(isDeepStrictEqual(header, { t: '#labels', op: 1 }), `raw message ${i + 1}: header ${JSON.stringify(header)}`);
    check(body.seq === i + 1, `raw message ${i + 1}: seq ${body.seq}`);
  });

  const { frames: errors, code } = await readRawFrames(wsUrl, futureCursor, 1);
  check(errors.length === 1, `raw FutureCursor: ${errors.length} messages before the close, expected 1`);
  const { header, body } = splitFrame(errors[0], 'raw FutureCursor message');
  check(isDeepStrictEqual(header, { op: -1 }) && body.error === 'FutureCursor',
    `raw FutureCursor: ${JSON.stringify(header)} ${JSON.stringify(body)}`);
  check(code === 1008, `raw FutureCursor: close code ${code}, expected 1008`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { values } = parseArgs({ options: { url: { type: 'string' }, expect: { type: 'string' } } });
  const expect = Number(values.expect);
  check(values.url && Number.isInteger(expect) && expect > 0,
    'usage: node verify-labeler.mjs --url http://127.0.0.1:PORT --expect N');
  const baseUrl = values.url.replace(/\/$/, '');
  const wsUrl = baseUrl.replace(/^http/, 'ws');

  const identityInfo = await withTimeout(resolveLabelKey(baseUrl), STAGE_TIMEOUT_MS, 'DID resolution');
  console.log(`identity: ${identityInfo.did}, #atproto_label ${identityInfo.didKey} (${identityInfo.curve}), resolved by @atproto/identity DidWebResolver`);

  const { labels, pages } = await queryAll(baseUrl, identityInfo, expect);
  const negations = labels.filter((l) => l.neg).length;
  console.log(`queryLabels: ${labels.length} labels (${negations} negations) in ${pages} pages, Lexicon-valid per @atproto/api; ` +
    'every signature verified by @atproto/crypto (+@ipld/dag-cbor) and @atcute/crypto (+@atcute/cbor)');

  const lastSeq = await streamAll(wsUrl, identityInfo, expect, labels);
  console.log(`subscribeLabels: ${expect} #labels messages via @atproto/xrpc-server Subscription, Lexicon-valid, ` +
    `seq 1..${lastSeq} without gaps, one label each, signatures verified by both stacks, identical to queryLabels; ` +
    'pongs kept the connection alive, nothing extra arrived');

  const futureCursor = expect + 1000;
  const err = await expectFutureCursor(wsUrl, futureCursor);
  console.log(`cursor=${futureCursor}: XRPCError ${err.error} (${err.message})`);

  await checkRawFrames(wsUrl, expect, futureCursor);
  console.log(`raw frames: ${expect} messages and the FutureCursor error are canonical DRISL; error frame then close 1008`);
}

const overall = setTimeout(() => {
  console.error(`FAIL: not finished within ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(2);
}, OVERALL_TIMEOUT_MS);

try {
  await main();
  console.log('OK: the labeler interoperates with @atproto/* and @atcute/*');
  process.exit(0);
} catch (err) {
  // Library errors (e.g. XRPCInvalidResponseError from Lexicon validation) keep their own text.
  console.error(err instanceof CheckFailed ? `FAIL: ${err.message}` : `FAIL: ${err?.stack ?? err}`);
  process.exit(1);
} finally {
  clearTimeout(overall);
}
