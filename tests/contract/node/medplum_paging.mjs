// Pages through every Encounter with Medplum's TypeScript client; prints the ids as JSON.
// Usage: node medplum_paging.mjs <server root URL> (the FHIR base is <root>/fhir/).
import { MedplumClient } from '@medplum/core';

const medplum = new MedplumClient({ baseUrl: process.argv[2], fhirUrlPath: 'fhir', fetch });
const ids = [];
for await (const page of medplum.searchResourcePages('Encounter', { _count: '20', _sort: 'date' })) {
  ids.push(...page.map((encounter) => encounter.id));
}
console.log(JSON.stringify(ids));
