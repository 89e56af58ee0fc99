import { Counter, Gauge, type Registry } from '@knet/runtime';

/** connector-init's metrics, registered on the app's registry (served on /metrics by `app.serve()`). */
export interface AppMetrics {
  /** This ordinal's connector is recorded and a pair is ready for (or was given to) the connector. */
  provisioned(): void;
  readonly ready: boolean;
  tokensGenerated(): void;
  handedOff(): void;
  claimConflict(): void;
  alive(alive: boolean): void;
}

export function createAppMetrics(registry: Registry): AppMetrics {
  const registers = [registry];
  const generated = new Counter({
    name: 'connector_init_tokens_generated_total',
    help: 'token pairs generated for this ordinal’s connector (each one revokes the previous pair)',
    registers,
  });
  const handoffs = new Counter({
    name: 'connector_init_handoffs_total',
    help: 'token pairs handed to the connector container (one per container start)',
    registers,
  });
  const conflicts = new Counter({
    name: 'connector_init_claim_conflicts_total',
    help: 'claim writes that lost to a sibling’s write (409) and were planned again',
    registers,
  });
  const alive = new Gauge({
    name: 'connector_init_connector_alive',
    help: '1 once the API reported this ordinal’s connector ALIVE after the last handoff',
    registers,
  });
  let ready = false;
  return {
    get ready() {
      return ready;
    },
    provisioned() {
      ready = true;
      generated.inc();
    },
    tokensGenerated: () => generated.inc(),
    handedOff: () => handoffs.inc(),
    claimConflict: () => conflicts.inc(),
    alive: (a) => alive.set(a ? 1 : 0),
  };
}
