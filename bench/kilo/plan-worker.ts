/**
 * The planner bench's process (bundled with esbuild and run with `node --expose-gc`, see plan.ts):
 * `plan-worker.cjs LOCATIONS NODES_PER_LOCATION PEERS RUNS WARMUP` prints one JSON `PlanResult`.
 */
import { runPlanBench } from './plan';

const [locations, nodesPerLocation, peers, runs, warmup] = process.argv.slice(2).map(Number);
const ints = [locations, nodesPerLocation, peers, runs, warmup];
if (ints.some((n) => n === undefined || !Number.isInteger(n) || n < 1)) {
  process.stderr.write('usage: plan-worker LOCATIONS NODES_PER_LOCATION PEERS RUNS WARMUP (integers ≥ 1)\n');
  process.exitCode = 2;
} else {
  const result = runPlanBench(
    { locations: locations as number, nodesPerLocation: nodesPerLocation as number, peers: peers as number },
    runs as number,
    warmup as number,
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
