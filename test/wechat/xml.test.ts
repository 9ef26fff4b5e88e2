/**
 * The XML safety layer (issue 10, item 4): the pre-scan that refuses declarations, processing
 * instructions and attributes wherever they hide, and the parser options under which no entity
 * from a DTD can expand even if a DTD ever got past the scan.
 */
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { decodeXmlReferences, DtdRefusedError, findForbiddenMarkup, SAFE_XML_PARSER_OPTIONS } from '../../src/wechat/xml.js';

const A = 'A'.repeat(1_000);
const DTD = `<!DOCTYPE x [<!ENTITY e "${A}">]>`;

describe('SAFE_XML_PARSER_OPTIONS: no entity from a DTD ever expands', () => {
  it.each([
    ['a DTD before the root', `${DTD}<xml><C>${'&e;'.repeat(90)}</C></xml>`],
    ['a DTD behind an attribute value (what the old pre-scan missed)', `<xml><P a="<![CDATA["/>${DTD}<Q b="]]>"/><C>${'&e;'.repeat(90)}</C></xml>`],
    ['a DTD after the root', `<xml><C>&e;</C></xml>${DTD}`],
    ['a DOCTYPE without entities', '<!DOCTYPE xml><xml><C>x</C></xml>'],
  ])('%s reaching fast-xml-parser makes it throw DtdRefusedError', (_name, xml) => {
    expect(() => new XMLParser(SAFE_XML_PARSER_OPTIONS).parse(xml)).toThrow(DtdRefusedError);
    // Options copied with a spread (as the reply readers do) keep the guard.
    expect(() => new XMLParser({ ...SAFE_XML_PARSER_OPTIONS, isArray: () => false }).parse(xml)).toThrow(DtdRefusedError);
  });

  it('the XML references decode exactly once; CDATA is untouched', () => {
    const doc = new XMLParser(SAFE_XML_PARSER_OPTIONS).parse(
      '<xml><C>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#20320;&#x597D;&#x1F600; &amp;#65; &amp;amp;<![CDATA[&amp;]]></C></xml>',
    ) as { xml: { C: string } };
    expect(doc.xml.C).toBe('a & b <c> "d" \'e\' 你好😀 &#65; &amp;&amp;');
  });

  it('the parser can be used many times (the decoder keeps no state between documents)', () => {
    const parser = new XMLParser(SAFE_XML_PARSER_OPTIONS);
    expect(() => parser.parse(`${DTD}<xml><C>&e;</C></xml>`)).toThrow(DtdRefusedError);
    expect((parser.parse('<xml><C>&e;&lt;</C></xml>') as { xml: { C: string } }).xml.C).toBe('&e;<');
  });
});

describe('decodeXmlReferences (XML 1.0 §4.1, §4.6)', () => {
  it.each([
    ['&lt;&gt;&amp;&quot;&apos;', '<>&"\''],
    ['&#65;&#x42;&#x0063;&#0000068;', 'ABcD'],
    ['&#x1F600;&#128512;', '😀😀'],
    ['&amp;lt;', '&lt;'],
    ['&nbsp;&copy;&yen;&e;&AMP;&Lt;', '&nbsp;&copy;&yen;&e;&AMP;&Lt;'],
    ['&#0;&#x1;&#8;&#xB;&#x1F;&#xD800;&#57343;&#xFFFE;&#xFFFF;', ''],
    ['&#9;&#xA;&#13;', '\t\n\r'],
    ['&#x110000;&#99999999999999999999;&#;&#x;&#X41;&#12a;& amp;&amp', '&#x110000;&#99999999999999999999;&#;&#x;&#X41;&#12a;& amp;&amp'],
    ['no references', 'no references'],
  ])('%j → %j', (input, output) => {
    expect(decodeXmlReferences(input)).toBe(output);
  });

  it('never lengthens its input: every reference is longer than what it stands for', () => {
    const input = '&lt;&#x10FFFF;&#65536;&#9;'.repeat(1_000);
    expect(decodeXmlReferences(input).length).toBeLessThan(input.length);
  });
});

describe('findForbiddenMarkup', () => {
  it.each([
    ['<xml><A><![CDATA[<!DOCTYPE html><P a="1"><?pi?>]]></A></xml>'],
    ['<xml><!-- <!DOCTYPE x> <P a="1"> --><A>x</A></xml>'],
    ['<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <A/>\n  <B >b</B\n>\n</xml>\n'],
    ['\uFEFF<?xml version="1.0"?><xml/>'],
    ['text "with quotes" = and > and ]]> outside markup'],
    [''],
  ])('finds nothing in %j', (xml) => {
    expect(findForbiddenMarkup(xml)).toBeUndefined();
  });

  it.each([
    ['<!DOCTYPE x>', { kind: 'declaration', at: 0, name: '<!DOCTYPE' }],
    ['<xml><!ENTITY e "x"></xml>', { kind: 'declaration', at: 5, name: '<!ENTITY' }],
    ['<xml></xml><!doctype x>', { kind: 'declaration', at: 11, name: '<!doctype' }],
    ['<xml><![INCLUDE[x]]></xml>', { kind: 'declaration', at: 5, name: '<!' }],
    ['<?xml-stylesheet href="x"?><xml/>', { kind: 'processing-instruction', at: 0, name: '<?xml-stylesheet' }],
    ['<xml><?xml version="1.0"?></xml>', { kind: 'processing-instruction', at: 5, name: '<?xml' }],
    ['<xml><P a="<![CDATA["/><!DOCTYPE x><Q b="]]>"/></xml>', { kind: 'attribute', at: 5, name: 'P' }],
    ['<xml\ta="1"></xml>', { kind: 'attribute', at: 0, name: 'xml' }],
    ['<xml><P"x"></P></xml>', { kind: 'malformed', at: 5, name: 'P' }],
    ['<xml></P "<![CDATA["><!DOCTYPE x>]]></xml>', { kind: 'malformed', at: 5, name: 'P' }],
    ['<xml>< P></xml>', { kind: 'malformed', at: 5, name: '' }],
    ['<xml><![CDATA[x</xml>', { kind: 'malformed', at: 5, name: '<![CDATA[' }],
    ['<xml><!-- x</xml>', { kind: 'malformed', at: 5, name: '<!--' }],
  ])('%j → %j', (xml, finding) => {
    expect(findForbiddenMarkup(xml)).toEqual(finding);
  });

  it('reads comments and CDATA as fast-xml-parser does: <!--> does not close the comment it opens', () => {
    expect(findForbiddenMarkup('<xml><!--><!DOCTYPE x>--></xml>')).toBeUndefined();
    expect(findForbiddenMarkup('<xml><!-->--><!DOCTYPE x></xml>')).toMatchObject({ kind: 'declaration' });
    expect(findForbiddenMarkup('<xml><![CDATA[]]><!DOCTYPE x></xml>')).toMatchObject({ kind: 'declaration' });
  });
});
