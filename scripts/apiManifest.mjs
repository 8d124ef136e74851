// Writes the public API manifest (what apiManifest() in src/analysis/introspection.ts returns) from
// the compiled declarations: every export of each package entry point that has types
// (package.json "exports": "." → dist/src/index.d.ts, "./node" → dist/src/node.d.ts, …) with its kind, signatures, members and the first line of its doc
// comment, as dist/src/api.json and, for the browser bundle, dist/browser/api.json. Run by
// `npm run build` after tsc; the TypeScript compiler is used here only, never at run time.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
/** Entry point → declaration file under dist/, for every package export that has types ("." → src/index.d.ts, …). */
const ENTRY_POINTS = Object.fromEntries(
  Object.entries(pkg.exports)
    .filter(([, target]) => typeof target === 'object' && typeof target.types === 'string')
    .map(([entry, target]) => [entry, relative(dist, join(root, target.types))]),
);

const program = ts.createProgram(
  Object.values(ENTRY_POINTS).map((f) => join(dist, f)),
  { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] },
);
const checker = program.getTypeChecker();
const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });
const TYPE_FLAGS = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope | ts.TypeFormatFlags.WriteArrowStyleSignature;

const oneLine = (text) => text.replace(/\s+/g, ' ').trim();
/** A type as the declaration writes it (tsc always writes one in .d.ts files), else as the checker prints it. */
const typeText = (node, type, at) => (node ? oneLine(printer.printNode(ts.EmitHint.Unspecified, node, node.getSourceFile())) : checker.typeToString(type, at, TYPE_FLAGS));

/**
 * The doc comment's summary: its first sentence (the first paragraph when no sentence ends in it),
 * on one line, as comments wrap lines anywhere; undefined when there is none.
 */
function docLine(parts) {
  const paragraph = oneLine(ts.displayPartsToString(parts).split(/\n\s*\n/)[0]);
  if (!paragraph) return undefined;
  const sentence = /^(.+?[.!?])(?=\s+[A-Z`"(]|$)/.exec(paragraph);
  return sentence ? sentence[1] : paragraph;
}

function signature(sig, name) {
  const declaration = sig.getDeclaration();
  const parameters = sig.getParameters().map((p) => {
    const decl = p.valueDeclaration;
    const param = decl && ts.isParameter(decl) ? decl : undefined;
    return {
      name: p.getName(),
      type: typeText(param?.type, checker.getTypeOfSymbolAtLocation(p, decl ?? declaration), declaration),
      optional: Boolean(param && (param.questionToken || param.initializer)),
      rest: Boolean(param?.dotDotDotToken),
    };
  });
  const returns = typeText(declaration && !ts.isConstructorDeclaration(declaration) ? declaration.type : undefined, sig.getReturnType(), declaration);
  const text = `${name}(${parameters.map((p) => `${p.rest ? '...' : ''}${p.name}${p.optional ? '?' : ''}: ${p.type}`).join(', ')})${name === 'new' ? '' : `: ${returns}`}`;
  const out = { text, parameters, returns };
  const doc = docLine(sig.getDocumentationComment(checker));
  if (doc) out.doc = doc;
  return out;
}

const isPrivate = (decl) => Boolean(decl && ts.getCombinedModifierFlags(decl) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) || Boolean(decl?.name && ts.isPrivateIdentifier(decl.name));

/** Public methods and properties of a class (instance, then static). */
function classMembers(symbol) {
  const members = [];
  const collect = (type, isStatic) => {
    for (const member of checker.getPropertiesOfType(type)) {
      const decl = member.valueDeclaration ?? member.declarations?.[0];
      if (!decl || isPrivate(decl) || member.getName() === 'prototype') continue;
      const entry = { name: member.getName(), static: isStatic };
      const memberType = checker.getTypeOfSymbolAtLocation(member, decl);
      if (member.flags & ts.SymbolFlags.Method) {
        entry.kind = 'method';
        entry.signatures = memberType.getCallSignatures().map((s) => signature(s, member.getName()));
      } else {
        entry.kind = member.flags & ts.SymbolFlags.GetAccessor ? 'getter' : 'property';
        entry.type = typeText(decl.type, memberType, decl);
        if (decl && ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Readonly) entry.readonly = true;
      }
      const doc = docLine(member.getDocumentationComment(checker));
      if (doc) entry.doc = doc;
      members.push(entry);
    }
  };
  collect(checker.getDeclaredTypeOfSymbol(symbol), false);
  collect(checker.getTypeOfSymbol(symbol), true);
  return members;
}

function describe(name, exported) {
  const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const declarations = symbol.declarations ?? [];
  const decl = symbol.valueDeclaration ?? declarations[0];
  const file = decl?.getSourceFile().fileName;
  const entry = { name, kind: 'const' };
  if (file) entry.module = relative(dist, file).replace(/\.d\.ts$/, '.ts');
  const flags = symbol.flags;
  if (flags & ts.SymbolFlags.Class) {
    entry.kind = 'class';
    entry.constructors = checker.getTypeOfSymbol(symbol).getConstructSignatures().map((s) => signature(s, 'new'));
    entry.members = classMembers(symbol);
  } else if (flags & ts.SymbolFlags.Enum) {
    entry.kind = 'enum';
    entry.members = checker.getExportsOfModule(symbol).map((m) => ({ name: m.getName(), value: checker.getConstantValue(m.valueDeclaration) }));
  } else if (flags & ts.SymbolFlags.Function) {
    entry.kind = 'function';
    entry.signatures = checker.getTypeOfSymbol(symbol).getCallSignatures().map((s) => signature(s, name));
  } else if (flags & ts.SymbolFlags.Variable) {
    const type = checker.getTypeOfSymbolAtLocation(symbol, decl);
    entry.type = typeText(decl?.type, type, decl);
    const calls = type.getCallSignatures();
    if (calls.length > 0) entry.signatures = calls.map((s) => signature(s, name));
  } else {
    entry.kind = 'type';
  }
  // A type alias or interface, alone or beside a value of the same name.
  const typeDecl = declarations.find((d) => ts.isTypeAliasDeclaration(d) || ts.isInterfaceDeclaration(d));
  if (typeDecl && entry.kind !== 'class') {
    if (ts.isTypeAliasDeclaration(typeDecl)) entry.definition = oneLine(printer.printNode(ts.EmitHint.Unspecified, typeDecl.type, typeDecl.getSourceFile()));
    else {
      entry.definition = 'interface';
      entry.members = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)).map((m) => {
        const d = m.valueDeclaration ?? m.declarations?.[0];
        const member = { name: m.getName(), type: typeText(d?.type, checker.getTypeOfSymbolAtLocation(m, d), d), optional: Boolean(m.flags & ts.SymbolFlags.Optional) };
        const doc = docLine(m.getDocumentationComment(checker));
        if (doc) member.doc = doc;
        return member;
      });
    }
  }
  const doc = docLine(symbol.getDocumentationComment(checker)) ?? entry.signatures?.find((s) => s.doc)?.doc;
  if (doc) entry.doc = doc;
  return entry;
}

const entryPoints = {};
for (const [entry, file] of Object.entries(ENTRY_POINTS)) {
  const source = program.getSourceFile(join(dist, file));
  if (!source) throw new Error(`apiManifest: ${join(dist, file)} is missing (run tsc first)`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exports = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  entryPoints[entry] = exports.map((e) => describe(e.getName(), e)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const manifest = { package: pkg.name, version: pkg.version, typescript: ts.version, entryPoints };
const text = JSON.stringify(manifest) + '\n';
for (const out of [join(dist, 'src/api.json'), join(dist, 'browser/api.json')]) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
}
const counts = Object.entries(entryPoints).map(([e, list]) => `${list.length} in "${e}"`).join(', ');
console.log(`dist/src/api.json: ${counts} (${(text.length / 1024).toFixed(1)} KiB)`);
