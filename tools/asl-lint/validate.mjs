#!/usr/bin/env node
// Validate state machine definitions with AWS's own ASL tooling and print the findings.
//
//   node tools/asl-lint/validate.mjs <definition.json> [<definition.json> ...]
//
// Runs both validators on each file (placeholders must already be substituted):
//   amazon-states-language-service  the language service behind the AWS Toolkit (its JSON schema
//                                   and its state checks: transitions, unreachable states, ...)
//   asl-validator                   a JSON-schema validator with transition and path checks
// Prints one JSON array, one entry per file and tool:
//   [{"file": ..., "tool": ..., "findings": [{"code", "message", "where", ...}, ...]}, ...]
// Several files share one process: loading the tools takes longer than validating.
// Exit status: 0 no finding, 1 at least one finding in any file, 2 usage or crash.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

import aslService from "amazon-states-language-service";
import aslValidator from "asl-validator";
import { TextDocument } from "vscode-languageserver-textdocument";

async function languageServiceFindings(service, uri, text) {
  const document = TextDocument.create(uri, "asl", 1, text);
  const diagnostics = await service.doValidation(document, service.parseJSONDocument(document));
  // Every diagnostic counts, warnings included: the language service reports schema
  // violations (such as an unknown field) as warnings.
  return diagnostics.map((d) => ({
    code: d.code ?? null,
    message: d.message,
    where: `line ${d.range.start.line + 1}, column ${d.range.start.character + 1}`,
    text: document.getText(d.range).slice(0, 80),
  }));
}

function aslValidatorFindings(text) {
  let definition;
  try {
    definition = JSON.parse(text);
  } catch (error) {
    return [{ code: "NOT_JSON", message: `not valid JSON: ${error.message}`, where: null }];
  }
  const { errors } = aslValidator(definition);
  // Its errors are {"Error code", "Message", "schemaError"?: {"instancePath", ...}}.
  return errors.map((e) => ({
    code: e["Error code"],
    message: e.Message,
    where: e.schemaError?.instancePath ?? null,
  }));
}

async function main(paths) {
  if (paths.length === 0) {
    process.stderr.write("usage: node validate.mjs <definition.json> [<definition.json> ...]\n");
    return 2;
  }
  const service = aslService.getLanguageService({});
  const results = [];
  for (const file of paths.map((p) => resolve(p))) {
    const text = readFileSync(file, "utf-8");
    results.push(
      {
        file,
        tool: "amazon-states-language-service",
        findings: await languageServiceFindings(service, pathToFileURL(file).href, text),
      },
      { file, tool: "asl-validator", findings: aslValidatorFindings(text) },
    );
  }
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return results.some((r) => r.findings.length > 0) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error) => {
    process.stderr.write(`validate.mjs: ${error.stack ?? error}\n`);
    process.exitCode = 2;
  },
);
