/**
 * Small XML helpers shared by the inbound parser (`parser.ts`) and the reply writer (`reply-xml.ts`).
 *
 * @module
 */
import type { X2jOptions } from 'fast-xml-parser';

/**
 * Thrown by a parser built with {@link SAFE_XML_PARSER_OPTIONS} when the document has a
 * `<!DOCTYPE`: that parser refuses every DTD rather than reading its entities. Callers should have
 * refused the body before parsing ({@link findForbiddenMarkup}); this is the second guard.
 */
export class DtdRefusedError extends Error {
  override readonly name = 'DtdRefusedError';
}

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
/** `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&apos;`, `&#NNN;`, `&#xHHH;` (XML 1.0 §4.1 `Reference`; `&#X…;` is not XML). */
const XML_REFERENCE = /&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9A-Fa-f]+));/g;

/** Whether `codePoint` is an XML 1.0 `Char` (§2.2): #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. */
function isXmlChar(codePoint: number): boolean {
  return (
    codePoint === 0x9 ||
    codePoint === 0xa ||
    codePoint === 0xd ||
    (codePoint >= 0x20 && codePoint <= 0xd7ff) ||
    (codePoint >= 0xe000 && codePoint <= 0xfffd) ||
    (codePoint >= 0x10000 && codePoint <= 0x10ffff)
  );
}

/**
 * Decodes the references XML 1.0 itself defines, in one pass (`&amp;lt;` → `&lt;`, never `<`): the
 * five predefined entities `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` (§4.6) and character references
 * `&#NNN;` / `&#xHHH;` (§4.1). A character reference to a character XML forbids (`&#0;`, `&#x1;`,
 * a surrogate, `&#xFFFE;`) is dropped; one beyond U+10FFFF, any other name (`&nbsp;`, `&copy;`, an
 * entity a DTD would declare) and anything malformed stay exactly as written. The result is never
 * longer than the input: nothing here can expand.
 *
 * Source: protocol README §2.1 (strings come in CDATA, which is never decoded; bare text may hold
 * these references).
 */
export function decodeXmlReferences(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(XML_REFERENCE, (whole: string, name: string | undefined, decimal: string | undefined, hex: string | undefined) => {
    if (name !== undefined) return PREDEFINED_ENTITIES[name] ?? whole;
    const codePoint = decimal !== undefined ? Number(decimal) : Number.parseInt(hex ?? '', 16);
    if (!(codePoint <= 0x10ffff)) return whole;
    return isXmlChar(codePoint) ? String.fromCodePoint(codePoint) : '';
  });
}

/**
 * The entity decoder of {@link SAFE_XML_PARSER_OPTIONS} (fast-xml-parser 5's `entityDecoder`
 * interface): {@link decodeXmlReferences} for text, and no entity from anywhere else. The parser
 * hands it a document's DTD entities through `addInputEntities` (it calls that only after reading a
 * `<!DOCTYPE`), and that throws {@link DtdRefusedError}; `setExternalEntities` refuses any entity
 * too. It keeps no state, so one instance serves every parser.
 */
const XML_REFERENCES_ONLY: NonNullable<X2jOptions['entityDecoder']> = Object.freeze({
  decode: decodeXmlReferences,
  reset: () => undefined,
  setXmlVersion: () => undefined,
  addInputEntities: () => {
    throw new DtdRefusedError('the document has a <!DOCTYPE: DTDs are refused and their entities never expand');
  },
  setExternalEntities: (entities: Record<string, string>) => {
    if (Object.keys(entities).length > 0) throw new DtdRefusedError('extra entities are refused: only the XML references decode');
  },
});

/**
 * fast-xml-parser (v5) options that keep every value a string exactly as sent, and under which no
 * entity a document declares can ever expand.
 *
 * - `parseTagValue: false`: `<Content><![CDATA[007]]></Content>` stays `'007'` and a 64-bit `MsgId`
 *   stays a string (the defaults turn `007` into `7` and small/large ids into number/string).
 * - `trimValues: false`: CDATA content and text are untouched. Side effect: whitespace between
 *   elements is collected under the `'#text'` key of the parent (skip that key).
 * - `entityDecoder`: only the references XML 1.0 defines decode ({@link decodeXmlReferences}: the
 *   five predefined entities and `&#20320;` → `你`); HTML names such as `&nbsp;` stay as written
 *   (the `htmlEntities` option used before decoded a few; strict XML rejects them and WeChat sends
 *   none). fast-xml-parser reads a `<!DOCTYPE` anywhere in a document, not only before the root,
 *   and would expand its entities (up to 100,000 characters per document by default): with this
 *   decoder any `<!DOCTYPE` makes the parse throw {@link DtdRefusedError} instead. CDATA is never
 *   decoded.
 * - declarations / processing instructions are dropped, attributes ignored.
 *
 * Callers still refuse declarations, processing instructions and attributes before parsing
 * ({@link findForbiddenMarkup}), with a clearer error. Sources: protocol README §2.1 (fast-xml-parser
 * defaults corrupt data; refuse `<!DOCTYPE`), fast-xml-parser 5.12 `OrderedObjParser.js` (DOCTYPE
 * handling, `entityDecoder`).
 */
export const SAFE_XML_PARSER_OPTIONS: Readonly<X2jOptions> = Object.freeze({
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
  entityDecoder: XML_REFERENCES_ONLY,
  // No callback here needs the element's path as a string: without this, the parser builds one
  // per element (measured: about a seventh of the parse).
  jPath: false,
});

/**
 * Characters not allowed anywhere in an XML 1.0 document: U+0000–U+0008, U+000B, U+000C,
 * U+000E–U+001F, U+FFFE, U+FFFF and lone surrogates (XML 1.0 §2.2 `Char`). With the `u` flag a
 * valid surrogate pair is one code point ≥ U+10000 and is kept (emoji survive).
 */
const INVALID_XML_CHARS = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * Removes the characters XML 1.0 forbids (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE,
 * U+FFFF, lone surrogates); everything else is kept, including emoji (valid surrogate pairs).
 * No XML parser accepts them, escaped or not, so a reply containing one would be rejected whole.
 * Note: `\r` is kept, but every XML parser reads `\r\n` and a lone `\r` back as `\n`.
 */
export function removeInvalidXmlChars(value: string): string {
  return value.replace(INVALID_XML_CHARS, '');
}

/**
 * Wraps a value in a CDATA section: `cdata('a]]>b')` → `<![CDATA[a]]]]><![CDATA[>b]]>`.
 * Forbidden XML characters are removed first ({@link removeInvalidXmlChars}); every `]]>` is split
 * across two sections so the value parses back intact (protocol README §3.2).
 */
export function cdata(value: string): string {
  return `<![CDATA[${removeInvalidXmlChars(value).replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}

/** What {@link findForbiddenMarkup} found, and where. */
export interface ForbiddenMarkup {
  /**
   * - `declaration`: `<!` other than a CDATA section or a comment (`<!DOCTYPE`, `<!ENTITY`,
   *   `<!ELEMENT`, `<!ATTLIST`, `<!NOTATION`, `<![INCLUDE[`, any case);
   * - `processing-instruction`: `<?…?>` other than one XML declaration at the very start;
   * - `attribute`: a start tag with something after its name (`<Content lang="zh">`);
   * - `malformed`: a tag that is not `<Name>`, `<Name/>` or `</Name>` (with optional whitespace
   *   before the `>`), a `<` that starts nothing, an unterminated CDATA section or comment;
   * - `unbalanced`: elements that do not nest (an end tag that closes another element, or none;
   *   an element never closed), no root element or a second one, or text or CDATA outside the
   *   root. fast-xml-parser reads such bodies leniently, so this is the well-formedness check.
   */
  readonly kind: 'declaration' | 'processing-instruction' | 'attribute' | 'malformed' | 'unbalanced';
  /** Offset of the `<` that starts it. */
  readonly at: number;
  /**
   * `<!DOCTYPE` (the keyword as written, up to 20 letters), `<?xml-stylesheet` (the target, up to 40
   * characters), the element's name (up to 40 characters) for an attribute or a malformed tag,
   * `<![CDATA[` or `<!--` for an unterminated section, `''` for a `<` that starts nothing; for
   * `unbalanced`, what is wrong (`</b> closes <a>`, `<a> is not closed`, `a second root <xml>`,
   * `text outside the root`, `no root element`).
   */
  readonly name: string;
}

const XML_SPACE = /[ \t\r\n]*/y;
/** A tag name as far as this scan cares: no whitespace, no character that could start or end markup or a quoted value. */
const TAG_NAME = /[^\s<>/!?"'=&]+/y;
/** The XML declaration (XML 1.0 §2.8 `XMLDecl`), kept simple: pseudo-attributes whose quoted values hold no `<`, `>`, `?`, `&`. */
const XML_DECLARATION = /^<\?xml(?:[ \t\r\n]+[A-Za-z]+[ \t\r\n]*=[ \t\r\n]*(?:"[^"<>?&]*"|'[^'<>?&]*'))*[ \t\r\n]*\?>$/;
const MAX_XML_DECLARATION_LENGTH = 200;

/**
 * The first markup in `xml` that WeChat never sends and that an XML parser could act on: a markup
 * declaration (`<!DOCTYPE`, `<!ENTITY`, …), a processing instruction (`<?xml-stylesheet …?>`; the
 * XML declaration `<?xml version="1.0" …?>` is allowed at the very start, after an optional BOM), an
 * attribute, or a tag this scan cannot read; `undefined` when there is none. Text inside CDATA
 * sections and comments is skipped: a user's `<!DOCTYPE html>` inside a CDATA `Content` is text.
 *
 * WeChat's pushes are `<xml>` with child elements, text and CDATA only: no DTD, no processing
 * instruction, no attribute (protocol README §2.1-§2.4 and every official example and vector). So
 * the scan accepts exactly that subset and refuses everything else instead of trying to read it.
 * Refusing attributes outright is what makes the scan sound: a quoted attribute value is the one
 * place where `<![CDATA[`, `<!--` or `?>` are data, not markup, and fast-xml-parser's tag reader skips
 * quoted values while a simpler scan would not, so the two could disagree on where a CDATA
 * section or comment starts and a `<!DOCTYPE` could hide in between (`<P a="<![CDATA["/><!DOCTYPE …>
 * <Q b="]]>"/>`; fast-xml-parser reads a DOCTYPE anywhere in a document). With no attributes,
 * every tag is `<Name>`, `<Name/>` or `</Name>`, holds no quote, and ends at its first `>` for any
 * reader; CDATA sections and comments end at their first `]]>` / `-->` (searched from where
 * fast-xml-parser searches); so the scan and the parser see the same markup.
 *
 * Follows the XML tokenizer's order (XML 1.0 §2.5, §2.6, §2.7, §2.8, §3.1). Linear in the length of
 * `xml`; stops at the first forbidden finding.
 *
 * With `document: true` it also checks that `xml` is one well-formed document of that subset
 * (`unbalanced`): elements nest and close, one root, only whitespace outside it, every `&` in text
 * starts a reference. fast-xml-parser reads broken structure leniently, so this replaces a separate
 * validator pass over the body. A forbidden finding anywhere wins over a structural one.
 */
export function findForbiddenMarkup(xml: string, options: { readonly document?: boolean } = {}): ForbiddenMarkup | undefined {
  const document = options.document === true;
  /** The names of the elements open at `at`, outermost first (with `document`). */
  const open: string[] = [];
  let roots = 0;
  /** The first structural problem (with `document`): reported only if nothing forbidden follows. */
  let unbalanced: ForbiddenMarkup | undefined;
  const note = (found: ForbiddenMarkup): void => {
    unbalanced ??= found;
  };
  /** Text between markup: at the top level only whitespace (a BOM aside); inside, `&` only as a reference. */
  const checkText = (from: number, to: number): void => {
    if (!document || unbalanced !== undefined || from >= to) return;
    const text = xml.slice(from, to);
    if (open.length === 0) {
      if (!WHITESPACE_ONLY.test(text.replace(/^\uFEFF/, ''))) note({ kind: 'unbalanced', at: from, name: 'text outside the root' });
    } else if (text.includes('&') && BARE_AMPERSAND.test(text)) {
      note({ kind: 'unbalanced', at: from, name: "an '&' that starts no character or entity reference" });
    }
  };
  const start = xmlDeclarationEnd(xml);
  let textFrom = start;
  for (let at = xml.indexOf('<', start); at !== -1; at = xml.indexOf('<', textFrom)) {
    checkText(textFrom, at);
    if (xml.startsWith('<![CDATA[', at)) {
      if (document && open.length === 0) note({ kind: 'unbalanced', at, name: 'text outside the root' });
      const close = xml.indexOf(']]>', at + 9);
      if (close === -1) return { kind: 'malformed', at, name: '<![CDATA[' };
      textFrom = close + 3;
    } else if (xml.startsWith('<!--', at)) {
      const close = xml.indexOf('-->', at + 4);
      if (close === -1) return { kind: 'malformed', at, name: '<!--' };
      textFrom = close + 3;
    } else if (xml.startsWith('<!', at)) {
      return { kind: 'declaration', at, name: `<!${/^[A-Za-z]{0,20}/.exec(xml.slice(at + 2, at + 22))?.[0] ?? ''}` };
    } else if (xml.startsWith('<?', at)) {
      return { kind: 'processing-instruction', at, name: `<?${/^[^\s<>?"'&]{0,40}/.exec(xml.slice(at + 2, at + 42))?.[0] ?? ''}` };
    } else {
      const end = tagEnd(xml, at);
      if (typeof end !== 'number') return end;
      if (document && unbalanced === undefined) balance(xml, at, end, open, note, () => (roots += 1));
      textFrom = end;
    }
  }
  if (!document) return undefined;
  checkText(textFrom, xml.length);
  if (unbalanced !== undefined) return unbalanced;
  if (open.length > 0) return { kind: 'unbalanced', at: xml.length, name: `<${(open.at(-1) ?? '').slice(0, MAX_SHOWN_NAME)}> is not closed` };
  if (roots === 0) return { kind: 'unbalanced', at: 0, name: 'no root element' };
  return undefined;
}

/** Keeps `open` (the element stack) for the tag at `at`..`end`, noting an end tag that closes another element or a second root. */
function balance(xml: string, at: number, end: number, open: string[], note: (found: ForbiddenMarkup) => void, newRoot: () => number): void {
  const closing = xml.charCodeAt(at + 1) === 0x2f; // '</Name>'
  /** The tag's name as an error shows it (only computed for an error). */
  const shown = (): string => fullTagName(xml, at + (closing ? 2 : 1)).slice(0, MAX_SHOWN_NAME);
  if (closing) {
    const expected = open.pop();
    if (expected === undefined) note({ kind: 'unbalanced', at, name: `</${shown()}> closes no element` });
    else if (!xml.startsWith(expected, at + 2) || !isTagNameEnd(xml.charCodeAt(at + 2 + expected.length))) {
      note({ kind: 'unbalanced', at, name: `</${shown()}> closes <${expected.slice(0, MAX_SHOWN_NAME)}>` });
    }
    return;
  }
  if (open.length === 0 && newRoot() > 1) note({ kind: 'unbalanced', at, name: `a second root <${shown()}>` });
  if (xml.charCodeAt(end - 2) !== 0x2f) open.push(fullTagName(xml, at + 1)); // not '<Name/>'
}

/** An `&` not followed by a character reference or an entity name and `;` (XML 1.0 §4.1). */
const BARE_AMPERSAND = /&(?!(?:#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z_:][A-Za-z0-9._:-]*);)/;
const WHITESPACE_ONLY = /^[ \t\r\n]*$/;
/** How much of a tag name an error shows. */
const MAX_SHOWN_NAME = 40;
/** The whole name of the tag whose name begins at `from` (as {@link tagEnd} read it). */
function fullTagName(xml: string, from: number): string {
  TAG_NAME.lastIndex = from;
  return TAG_NAME.exec(xml)?.[0] ?? '';
}

/** Whether `code` (the character after an end tag's name) ends it: whitespace or `>`. */
function isTagNameEnd(code: number): boolean {
  return code === 0x3e || code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** The offset just after a leading XML declaration (after an optional BOM), or 0 when there is none. */
function xmlDeclarationEnd(xml: string): number {
  const start = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  if (!xml.startsWith('<?xml', start)) return 0;
  const close = xml.indexOf('?>', start);
  if (close === -1 || close - start > MAX_XML_DECLARATION_LENGTH) return 0;
  return XML_DECLARATION.test(xml.slice(start, close + 2)) ? close + 2 : 0;
}

/** The offset just after the tag starting at `at` (`<Name>`, `<Name/>`, `</Name>`), or what is wrong with it. */
function tagEnd(xml: string, at: number): number | ForbiddenMarkup {
  const closing = xml.charCodeAt(at + 1) === 0x2f; // '/'
  const nameStart = at + (closing ? 2 : 1);
  TAG_NAME.lastIndex = nameStart;
  const name = TAG_NAME.exec(xml)?.[0];
  if (name === undefined) return { kind: 'malformed', at, name: '' };
  const nameEnd = nameStart + name.length;
  XML_SPACE.lastIndex = nameEnd;
  XML_SPACE.exec(xml); // always matches, possibly nothing
  const after = XML_SPACE.lastIndex;
  if (xml.charCodeAt(after) === 0x3e) return after + 1; // '>'
  if (!closing && xml.startsWith('/>', after)) return after + 2;
  const shown = name.slice(0, 40);
  TAG_NAME.lastIndex = after;
  if (!closing && after > nameEnd && TAG_NAME.test(xml)) return { kind: 'attribute', at, name: shown };
  return { kind: 'malformed', at, name: shown };
}
