// Validate the manifests against the schemas of kubernetes-models (generated from Kubernetes'
// OpenAPI) and @kubernetes-models/keda (generated from KEDA's CRDs' openAPIV3Schema).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const kinds = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Service": "kubernetes-models/v1/Service",
  "v1/PersistentVolumeClaim": "kubernetes-models/v1/PersistentVolumeClaim",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "apps/v1/StatefulSet": "kubernetes-models/apps/v1/StatefulSet",
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject",
};
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const body = doc.toJSON();
    if (!body) continue;
    const key = `${body.apiVersion}/${body.kind}`;
    const where = `${file}: ${body.kind} ${body.metadata?.name}`;
    if (!kinds[key]) { console.log(`${where}: no schema for ${key}`); failed++; continue; }
    const mod = await import(kinds[key]);
    try { new mod[body.kind](body).validate(); console.log(`${where}: valid`); }
    catch (e) { console.log(`${where}: INVALID: ${e.message}`); failed++; }
  }
}
process.exit(failed ? 1 : 0);
