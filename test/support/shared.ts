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

/** A 4-field `msg_signature` vector (`msg_signature` group of `protocol/vectors.json`). */
export interface MsgSignatureVector {
  id: string;
  token: string;
  timestamp: string;
  nonce: string;
  encrypt: string;
  msg_signature: string;
}

/** An AES envelope vector (`encryption` group): fixed `random16` (hex) → exact ciphertext and sizes. */
export interface EncryptionVector {
  id: string;
  token: string;
  encoding_aes_key: string;
  app_id: string;
  random16: string;
  random16_ascii?: string;
  plaintext_xml: string;
  format?: string;
  msg_len_bytes?: number;
  fullstr_bytes?: number;
  pad?: number;
  ciphertext_bytes?: number;
  ciphertext_base64?: string;
  timestamp?: string;
  nonce?: string;
  msg_signature?: string;
  post_body?: string;
  reply_envelope?: string;
}

/** A WeCom echostr vector (`wecom_contrast` group): what Official Accounts do not do. */
export interface WecomContrastVector {
  id: string;
  token: string;
  timestamp: string;
  nonce: string;
  echostr: string;
  msg_signature: string;
  encoding_aes_key: string;
  receive_id: string;
  expected_response_body: string;
}

/**
 * A negative vector: `expect_error` names the check that must reject it; `kind` is `signature`,
 * `msg_signature`, `decrypt` or `key`, and says which of the optional fields are set.
 */
export interface NegativeVector extends Partial<SignatureVector> {
  id: string;
  kind: string;
  expect_error: string;
  encrypt?: string;
  msg_signature?: string;
  encoding_aes_key?: string;
  app_id?: string;
  ciphertext_base64?: string;
}

/** The parts of `protocol/vectors.json` the tests use. */
export interface ProtocolVectors {
  signature: SignatureVector[];
  msg_signature: MsgSignatureVector[];
  encryption: EncryptionVector[];
  wecom_contrast: WecomContrastVector[];
  negative: NegativeVector[];
}

/** `../shared/protocol/vectors.json`. */
export const protocolVectors = (): ProtocolVectors => readSharedJson<ProtocolVectors>('protocol/vectors.json');
