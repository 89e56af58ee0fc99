// Stands in for the vendor's connector process in tests: started by the real launcher (which put
// the pair into its environment), it heartbeats the fake tenant with that pair every 300 ms, as
// the real connector talks to the controller with its tokens. A pair revoked by anyone (a sibling
// generating tokens for the same connector) makes it exit 3, which the tests count.
const [url] = process.argv.slice(2);
const access = process.env.TWINGATE_ACCESS_TOKEN;
const refresh = process.env.TWINGATE_REFRESH_TOKEN;
if (!url || !access || !refresh) {
  console.error(
    'fake-connector: usage: fake-connector.mjs <tenant url> (tokens in TWINGATE_ACCESS_TOKEN/TWINGATE_REFRESH_TOKEN)',
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
}
await beat();
setInterval(() => beat().catch((e) => (console.error(`fake-connector: ${e}`), process.exit(4))), 300);
