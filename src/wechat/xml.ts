/**
 * Small XML helpers shared by the inbound parser (`parser.ts`) and the reply writer (`reply-xml.ts`).
 *
 * @module
 */
import type { X2jOptions } from 'fast-xml-parser';

/**
 * fast-xml-parser (v5) options that keep every value a string exactly as sent.
 *
 * - `parseTagValue: false`: `<Content><![CDATA[007]]></Content>` stays `'007'` and a 64-bit `MsgId`
 *   stays a string (the defaults turn `007` into `7` and small/large ids into number/string).
 * - `trimValues: false`: CDATA content and text are untouched. Side effect: whitespace between
 *   elements is collected under the `'#text'` key of the parent (skip that key).
 * - `htmlEntities: true`: needed for numeric character references (`&#20320;` → `你`), which v5
 *   otherwise leaves undecoded; it also decodes a few HTML names (`&nbsp;`, `&copy;`, currency) that
 *   strict XML would reject. The five XML entities decode either way; CDATA is never decoded.
 * - declarations / processing instructions are dropped, attributes ignored.
 *
 * The parser still reads a DTD if one is present: callers must reject `<!DOCTYPE`/`<!ENTITY` first.
 * Source: protocol README §2.1 (fast-xml-parser defaults corrupt data).
 */
export const SAFE_XML_PARSER_OPTIONS: Readonly<X2jOptions> = Object.freeze({
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  htmlEntities: true,
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

/**
 * Whether `xml` contains a markup declaration (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`, `<!ATTLIST`,
 * `<!NOTATION`, any case) where an XML parser would read one: anywhere outside CDATA sections,
 * comments and processing instructions. Text a user typed, such as `<!DOCTYPE html>` inside a
 * CDATA `Content`, is not a declaration and does not count. WeChat never sends a DTD; refusing
 * declarations before parsing rules out entity expansion and XXE.
 *
 * The scan follows the XML tokenizer's order (XML 1.0 §2.5, §2.6, §2.7), so a `<![CDATA[` inside a
 * comment, or a `-->` inside CDATA, cannot hide a declaration. Linear in the length of `xml`.
 */
export function hasMarkupDeclaration(xml: string): boolean {
  let at = xml.indexOf('<');
  while (at !== -1) {
    let end: string | undefined;
    if (xml.startsWith('<![CDATA[', at)) end = ']]>';
    else if (xml.startsWith('<!--', at)) end = '-->';
    else if (xml.startsWith('<?', at)) end = '?>';
    else if (xml.startsWith('<!', at)) return true;
    if (end === undefined) {
      at = xml.indexOf('<', at + 1);
      continue;
    }
    const close = xml.indexOf(end, at + 2);
    if (close === -1) return false; // unterminated: nothing follows it, and the validator rejects it
    at = xml.indexOf('<', close + end.length);
  }
  return false;
}
