// Validators of the SBOM formats the action writes, offline: CycloneDX 1.6 with @cyclonedx/cyclonedx-library's
// strict JSON validator (its schemas ship in the package; it runs on ajv, ajv-formats and
// ajv-formats-draft2019), SPDX 2.3 with ajv against the schema vendored in __tests__/fixtures (see its README).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { repoRoot } from './action.js';

const cdx = new Validation.JsonStrictValidator(Spec.Version.v1dot6);

/** The CycloneDX 1.6 validator's errors for a document (null: valid). */
export async function cyclonedxErrors(doc: string | object): Promise<unknown> {
  return cdx.validate(typeof doc === 'string' ? doc : JSON.stringify(doc));
}

let spdx: ((data: unknown) => boolean) & { errors?: unknown } | undefined;

/** The SPDX 2.3 JSON schema's errors for a document (null: valid). */
export async function spdxErrors(doc: string | object): Promise<unknown> {
  if (!spdx) {
    const schema = JSON.parse(await readFile(join(repoRoot, '__tests__', 'fixtures', 'spdx-schema-2.3.json'), 'utf8')) as object;
    const ajv = new Ajv2019.default({ strict: false, allErrors: true });
    addFormats.default(ajv);
    spdx = ajv.compile(schema);
  }
  const data = typeof doc === 'string' ? (JSON.parse(doc) as unknown) : doc;
  return spdx(data) ? null : spdx.errors;
}
