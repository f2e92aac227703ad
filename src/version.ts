// The action's release version, as the SBOM and the provenance name their tool. Equal to package.json's
// "version" (__tests__/unit/sbom.test.ts checks): importing package.json itself would put the whole file in dist/.
export const VERSION = '1.0.0';
