// Stands in for the vendor's connector process in tests: started by the real launcher (which put
// the pair into its environment), it heartbeats the fake tenant with that pair every 300 ms, as
// the real connector talks to the controller with its tokens. A pair revoked by anyone (a sibling
// generating tokens for the same connector) makes it exit 3, which the tests count.
//
// The tenant's URL is its argument, or FAKE_CONNECTOR_TENANT_URL (in the TEST stand-in image
// ghcr.io/knet/fake-connector, docker/fake-connector.Dockerfile, the chart's launcher execs it with
// no argument and the URL comes from the chart's connector.env). With FAKE_CONNECTOR_HEALTH_FILE set,
// every accepted heartbeat rewrites that file ({"pid", "at"}), which the image's /connectorctl health
// reads.
import { renameSync, writeFileSync } from 'node:fs';

const url = process.argv[2] ?? process.env.FAKE_CONNECTOR_TENANT_URL;
const access = process.env.TWINGATE_ACCESS_TOKEN;
const refresh = process.env.TWINGATE_REFRESH_TOKEN;
const healthFile = process.env.FAKE_CONNECTOR_HEALTH_FILE;
if (!url || !access || !refresh) {
  console.error(
    'fake-connector: usage: fake-connector.mjs <tenant url> (or FAKE_CONNECTOR_TENANT_URL; tokens in TWINGATE_ACCESS_TOKEN/TWINGATE_REFRESH_TOKEN)',
  );
  process.exit(2);
}
async function beat() {
  const r = await fetch(`${url}/fake/connector/heartbeat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${access}`, 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: refresh }),
  });
  const body = await r.text();
  console.log(JSON.stringify({ heartbeat: r.status, body }));
  if (r.status !== 200) process.exit(3);
  if (healthFile) {
    // Written beside and renamed: /connectorctl never reads half a file.
    writeFileSync(`${healthFile}.tmp`, JSON.stringify({ pid: process.pid, at: Date.now() }));
    renameSync(`${healthFile}.tmp`, healthFile);
  }
}
await beat();
setInterval(() => beat().catch((e) => (console.error(`fake-connector: ${e}`), process.exit(4))), 300);
