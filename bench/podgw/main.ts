/**
 * `npm run bench -- podgw [options]`: the pod-gateway apps on this machine, each against the
 * program pod-gateway uses for the same job, in one run. One JSON object per line on stdout;
 * progress on stderr.
 *
 *   dns     queries/s with dnsperf: our gateway DNS vs dnsmasq, same records, same upstream
 *   dhcp    time to a lease for 1 and for 50 clients at once: our DHCP server vs dnsmasq
 *   client  client-init's time to routed, and the client's recovery after a gateway restart
 *   killswitch  a new gateway's start to its clients routed; the kill switch restored after a flush
 *
 * Options: --only=dns,dhcp,client,killswitch  --seconds=S (each timed dnsperf run)  --rounds=N  --keep
 */
import { parseArgs } from 'node:util';
import { Cleanup, log, resultEmitter, runBench } from '@knet/testing';
import { benchClient } from './client';
import type { BenchContext } from './context';
import { benchDhcp } from './dhcp';
import { benchDns } from './dns';
import { benchKillSwitch } from './killswitch';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'dns,dhcp,client,killswitch' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    keep: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const parts = new Set((args.only ?? '').split(',').filter(Boolean));
for (const p of parts) {
  if (!['dns', 'dhcp', 'client', 'killswitch'].includes(p)) {
    log(`unknown part "${p}" in --only; use dns, dhcp, client, killswitch`);
    process.exit(2);
  }
}
const cleanup = new Cleanup();
const ctx: BenchContext = {
  emit: resultEmitter('gateway'),
  log,
  cleanup,
  seconds: Number(args.seconds),
  keep: Boolean(args.keep),
};
async function main(): Promise<void> {
  if (parts.has('dns')) await benchDns(ctx);
  if (parts.has('dhcp')) await benchDhcp(ctx);
  if (parts.has('client')) await benchClient(ctx, Number(args.rounds));
  if (parts.has('killswitch')) await benchKillSwitch(ctx, Number(args.rounds));
}

runBench(main, { cleanup });
