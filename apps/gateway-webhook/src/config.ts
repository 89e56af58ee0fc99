import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseResolvConf } from '@knet/podgw';
import { errorMessage, type ParsedOptions } from '@knet/runtime';
import type { InjectConfig } from './inject';
import type { program } from './options';

type Options = ParsedOptions<typeof program.specs>;

/** What `injectConfig` reads from outside (seams for tests). */
export interface ConfigSources {
  readFile: (path: string) => string;
  resolve: (name: string) => Promise<string>;
}

const realSources: ConfigSources = {
  readFile: (path) => readFileSync(path, 'utf8'),
  resolve: async (name) => (await lookup(name, { family: 4 })).address,
};

/**
 * The injection settings from the options, the webhook's resolv.conf (its nameservers become the
 * clients' K8S_DNS_ips; its searches and options their dnsConfig) and --DNS names resolved once, as
 * gateway-admision-controller does at start (pod specs need IPs).
 */
export async function injectConfig(
  opts: Options,
  sources: ConfigSources = realSources,
): Promise<InjectConfig> {
  let resolvText: string;
  try {
    resolvText = sources.readFile(opts.resolvConf);
  } catch (e) {
    throw new Error(`cannot read --resolv-conf ${opts.resolvConf}: ${errorMessage(e)}`);
  }
  const resolv = parseResolvConf(resolvText);
  const dns = await Promise.all(
    opts.dns.map(async (server) => {
      if (isIP(server) !== 0) return server;
      try {
        return await sources.resolve(server);
      } catch (e) {
        throw new Error(
          `--DNS ${server} does not resolve: ${errorMessage(e)}; give the gateway's overlay IP (e.g. 172.16.0.1)`,
        );
      }
    }),
  );
  return {
    setGatewayDefault: opts.setGatewayDefault,
    label: opts.setGatewayLabel
      ? { key: opts.setGatewayLabel, value: opts.setGatewayLabelValue || undefined }
      : undefined,
    annotation: opts.setGatewayAnnotation
      ? { key: opts.setGatewayAnnotation, value: opts.setGatewayAnnotationValue || undefined }
      : undefined,
    gateway: opts.gateway || undefined,
    dns,
    dnsPolicy: opts.dnsPolicy,
    resolv,
    init: {
      image: opts.initImage,
      pullPolicy: opts.initImagePullPol,
      command: opts.initCmd || undefined,
      mountPoint: opts.initMountPoint,
    },
    sidecar: {
      image: opts.sidecarImage,
      pullPolicy: opts.sidecarImagePullPol,
      command: opts.sidecarCmd || undefined,
      mountPoint: opts.sidecarMountPoint,
      asInit: opts.sidecarAsInit,
    },
    configmapName: opts.configmapName,
    gatewayId: opts.gatewayId ?? opts.configmapName,
    ownNamespace: opts.namespace,
  };
}
