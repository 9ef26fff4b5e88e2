/**
 * Reads the reference material in `../shared/` (beside the repo root; CI checks it out there too).
 */
import { readFileSync } from 'node:fs';

/** Parses `../shared/<relativePath>` as JSON. */
export function readSharedJson<T>(relativePath: string): T {
  return JSON.parse(readFileSync(new URL(`../../../shared/${relativePath}`, import.meta.url), 'utf8')) as T;
}

/** A plain 3-field signature vector (`signature` group of `protocol/vectors.json`). */
export interface SignatureVector {
  id: string;
  token: string;
  timestamp: string;
  nonce: string;
  signature: string;
  echostr?: string;
  expected_response_body?: string;
}

/** A negative vector: `expect_error` names the check that must reject it. */
export interface NegativeVector extends Partial<SignatureVector> {
  id: string;
  kind: string;
  expect_error: string;
}

/** The parts of `protocol/vectors.json` the tests use. */
export interface ProtocolVectors {
  signature: SignatureVector[];
  negative: NegativeVector[];
}

/** `../shared/protocol/vectors.json`. */
export const protocolVectors = (): ProtocolVectors => readSharedJson<ProtocolVectors>('protocol/vectors.json');
