/**
 * The PacketMachine loop: fetch → owner Machine → Cluster → paused → finalizer → delete or normal,
 * each step planned by `planMachine` and carried out here. Status is collected as the pass goes
 * and written once at the end (CAPI's patch-helper pattern); the two writes that must happen
 * before a Metal API call are written at once: the create intent (before `POST …/devices`) and the
 * providerID (right after it), so a crash anywhere leaves either no device or a findable one.
 */
import {
  CLUSTER_NAME_LABEL,
  PACKET_MACHINE_FINALIZER,
  deviceIdFromProviderId,
  hasAllTags,
  identityTags,
  type CapiCondition,
  type CapiMachine,
  type PacketMachine,
  type PacketMachineStatus,
} from '@knet/capi';
import { setCondition } from '@knet/k8s';
import { isMetalError, type Device, type MetalApiError } from '@knet/metal';
import type { Logger } from '@knet/runtime';
import type { ClusterDeviceCache } from './device-cache';
import type { MetalPort } from './metal-port';
import { metalTrouble, type ProblemLog } from './problems';
import {
  CREATE_INTENT_ANNOTATION,
  INSTANCE_READY,
  READY,
  REASON,
  planMachine,
  type ConditionUpdate,
  type DeviceObservation,
  type MachineInput,
} from './plan';
import type { ProviderStore } from './store';

export interface ReconcileResult {
  /** Look again after this long (a provisioning device, a rate limit); undefined: wait for a watch. */
  requeueAfterMs?: number;
  /** And not sooner, whatever wakes the object: the Metal API asked to wait (429, 503, no answer). */
  holdOff?: boolean;
}

export interface MachineReconcilerDeps {
  store: ProviderStore;
  metal: MetalPort;
  devices: ClusterDeviceCache;
  problems: ProblemLog;
  logger: Logger;
  /** How often a provisioning device is looked at (the listing is shared by the cluster's machines). */
  pollIntervalMs: number;
  /** After a create the API refused (422 quota, unknown plan…), try again after this long. */
  rejectedRetryMs?: number;
  now?: () => Date;
}

/** At most this many steps in one pass (a pass that does not converge is a bug, not a loop). */
const MAX_STEPS = 16;

export class MachineReconciler {
  constructor(private readonly d: MachineReconcilerDeps) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    let pm = await this.d.store.getPacketMachine(namespace, name);
    if (!pm) return {};
    const machine = await this.ownerMachine(pm);
    const clusterName = machine?.spec.clusterName ?? pm.metadata.labels?.[CLUSTER_NAME_LABEL];
    const cluster = clusterName ? await this.d.store.getCluster(namespace, clusterName) : undefined;
    const infra = cluster?.spec?.infrastructureRef;
    const packetCluster =
      infra?.kind === 'PacketCluster'
        ? await this.d.store.getPacketCluster(namespace, infra.name)
        : undefined;
    const input: MachineInput = {
      packetMachine: pm,
      machine,
      cluster,
      packetCluster,
      device: { kind: 'not-looked-up' },
      pollIntervalMs: this.d.pollIntervalMs,
    };
    const pass = new StatusPass(pm, this.d.now?.() ?? new Date());
    const projectId = packetCluster?.spec.projectID;
    let result: ReconcileResult = {};
    let troubled = false;
    try {
      for (let n = 0; n < MAX_STEPS; n++) {
        input.packetMachine = pm;
        const step = planMachine(input);
        switch (step.do) {
          case 'wait':
            for (const c of step.conditions ?? []) pass.set(c);
            result = { requeueAfterMs: step.requeueMs };
            return result;
          case 'done':
            return result;
          case 'add-finalizer':
            pm = await this.d.store.addFinalizer(pm, PACKET_MACHINE_FINALIZER);
            continue;
          case 'look-up-device':
            input.device = await this.lookUp(pm, projectId, clusterName, machine);
            if (input.device.kind === 'found' && projectId && clusterName) {
              input.elasticIpHeld = await this.elasticIpHeld(projectId, clusterName, input);
            }
            continue;
          case 'record-create-intent':
            pass.set({
              type: INSTANCE_READY,
              status: 'False',
              reason: REASON.provisionStarted,
              message: 'creating the device',
              severity: 'Info',
            });
            pm = await this.d.store.patch(pm, {
              annotations: { [CREATE_INTENT_ANNOTATION]: pass.now.toISOString() },
            });
            pm = await this.d.store.patchStatus(pm, pass.status());
            input.device = { kind: 'absent' };
            continue;
          case 'read-bootstrap-data': {
            const data = await this.d.store.getSecretValue(namespace, step.secret, 'value');
            if (data === undefined) {
              pass.set({
                type: INSTANCE_READY,
                status: 'False',
                reason: REASON.waitingForBootstrapData,
                message: `bootstrap data Secret ${step.secret} has no key "value" yet`,
                severity: 'Info',
              });
              return { requeueAfterMs: this.d.pollIntervalMs };
            }
            input.userdata = data;
            continue;
          }
          case 'create-device': {
            if (!projectId || !clusterName)
              throw new Error(`PacketMachine ${namespace}/${name}: create planned without a cluster`);
            const device = await this.create(pm, projectId, step.request, step.hardwareReservations, pass);
            if (!device) return { requeueAfterMs: this.d.rejectedRetryMs ?? 300_000 };
            this.d.devices.invalidate(projectId, clusterName);
            pm = await this.d.store.patch(pm, { spec: { providerID: `equinixmetal://${device.id}` } });
            await this.d.store.event(
              pm,
              'Normal',
              'DeviceCreated',
              `created device ${device.id} (${device.state ?? 'queued'})`,
            );
            input.device = { kind: 'found', device };
            input.elasticIpHeld = undefined;
            continue;
          }
          case 'write-status': {
            if (!pm.spec.providerID) {
              pm = await this.d.store.patch(pm, { spec: { providerID: step.providerID } });
            }
            for (const c of step.conditions) pass.set(c);
            const before = pm.status?.instanceStatus;
            pass.patch({
              addresses: step.addresses,
              instanceStatus: step.instanceStatus,
              ready: step.ready,
              initialization: { provisioned: step.ready },
            });
            if (before !== step.instanceStatus && !step.event) {
              await this.d.store.event(pm, 'Normal', 'DeviceState', `device is ${step.instanceStatus}`);
            }
            if (step.event)
              await this.d.store.event(pm, step.event.type, step.event.reason, step.event.message);
            result = { requeueAfterMs: step.requeueMs };
            return result;
          }
          case 'assign-elastic-ip':
            await this.d.metal.assignIpAddress(step.deviceId, { address: step.address });
            await this.d.store.event(
              pm,
              'Normal',
              'ElasticIPAssigned',
              `assigned ${step.address} to device ${step.deviceId}`,
            );
            input.elasticIpHeld = true;
            input.device = await this.lookUp(pm, projectId, clusterName, machine, true);
            continue;
          case 'fail':
            pass.set({
              type: INSTANCE_READY,
              status: 'False',
              reason: step.reason,
              message: step.message,
              severity: 'Error',
            });
            pass.patch({ failureReason: step.reason, failureMessage: step.message, ready: false });
            await this.d.store.event(pm, 'Warning', step.reason, step.message);
            this.d.logger.warn({ packetMachine: `${namespace}/${name}`, reason: step.reason }, step.message);
            return result;
          case 'delete-device':
            await this.deleteDevice(step.deviceId);
            if (projectId && clusterName) this.d.devices.invalidate(projectId, clusterName);
            await this.d.store.event(pm, 'Normal', 'DeviceDeleted', `deleted device ${step.deviceId}`);
            input.device = { kind: 'gone' };
            continue;
          case 'remove-finalizer':
            await this.d.store.removeFinalizer(pm, PACKET_MACHINE_FINALIZER);
            this.d.problems.clear(`${namespace}/${name}`);
            return {};
        }
      }
      throw new Error(`PacketMachine ${namespace}/${name}: no result after ${MAX_STEPS} steps`);
    } catch (e) {
      const trouble = metalTrouble(e);
      if (!trouble) throw e;
      troubled = true;
      pass.set({
        type: INSTANCE_READY,
        status: 'False',
        reason: trouble.reason,
        message: trouble.message,
        severity: 'Warning',
      });
      this.d.problems.report(`${namespace}/${name}`, trouble.reason, trouble.message);
      return { requeueAfterMs: trouble.retryAfterMs, ...(trouble.holdOff ? { holdOff: true } : {}) };
    } finally {
      if (!troubled) this.d.problems.clear(`${namespace}/${name}`);
      await this.writeStatus(namespace, name, pass);
    }
  }

  private async writeStatus(namespace: string, name: string, pass: StatusPass): Promise<void> {
    if (!pass.changed()) return;
    // The object may have been patched during the pass; its latest version carries the status base.
    const cur = await this.d.store.getPacketMachine(namespace, name);
    if (!cur) return;
    await this.d.store.patchStatus(cur, pass.status());
  }

  private async ownerMachine(pm: PacketMachine): Promise<CapiMachine | undefined> {
    const ref = pm.metadata.ownerReferences?.find(
      (o) => o.kind === 'Machine' && o.apiVersion.startsWith('cluster.x-k8s.io/'),
    );
    if (!ref) return undefined;
    return this.d.store.getMachine(pm.metadata.namespace ?? 'default', ref.name);
  }

  /** By providerID (the cluster listing, else GET), else by the identity tags in a fresh listing. */
  private async lookUp(
    pm: PacketMachine,
    projectId: string | undefined,
    clusterName: string | undefined,
    machine: CapiMachine | undefined,
    fresh = false,
  ): Promise<DeviceObservation> {
    const id = deviceIdFromProviderId(pm.spec.providerID);
    if (!projectId || !clusterName) {
      if (!id) return { kind: 'absent' };
      return this.getById(id);
    }
    const maxAge = fresh ? 0 : id ? this.d.pollIntervalMs : 0;
    const devices = await this.d.devices.devices(projectId, clusterName, maxAge);
    if (id) {
      const hit = devices.find((d) => d.id === id);
      return hit ? { kind: 'found', device: hit } : this.getById(id);
    }
    const wanted = identityTags(
      clusterName,
      pm.metadata.namespace ?? 'default',
      machine?.metadata.name ?? pm.metadata.name,
    );
    const hit = devices.find((d) => hasAllTags(d.tags, wanted) && d.state !== 'deprovisioning');
    return hit ? { kind: 'found', device: hit } : { kind: 'absent' };
  }

  private async getById(id: string): Promise<DeviceObservation> {
    try {
      return { kind: 'found', device: await this.d.metal.getDevice(id) };
    } catch (e) {
      if (isMetalError(e, 'gone')) return { kind: 'gone' };
      if (isMetalError(e, 'forbidden')) return { kind: 'forbidden' };
      throw e;
    }
  }

  /** Whether a device of the cluster other than this one already holds the endpoint address. */
  private async elasticIpHeld(projectId: string, clusterName: string, input: MachineInput): Promise<boolean> {
    const eip = input.packetCluster?.spec.controlPlaneEndpoint?.host;
    if (!eip || input.device.kind !== 'found') return false;
    const self = input.device.device.id;
    const devices = await this.d.devices.devices(projectId, clusterName, this.d.pollIntervalMs);
    return devices.some((d) => d.id !== self && (d.ip_addresses ?? []).some((a) => a.address === eip));
  }

  /**
   * Creates the device, trying each hardware reservation in order; undefined when the API refused
   * them all (the condition says why). A create whose answer was lost (no response) is not retried:
   * the next pass finds the device by its tags.
   */
  private async create(
    pm: PacketMachine,
    projectId: string,
    request: Parameters<MetalPort['createDevice']>[1],
    reservations: string[],
    pass: StatusPass,
  ): Promise<Device | undefined> {
    const attempts = reservations.length > 0 ? reservations : [undefined];
    let last: MetalApiError | undefined;
    for (const r of attempts) {
      try {
        return await this.d.metal.createDevice(
          projectId,
          r ? { ...request, hardware_reservation_id: r } : request,
        );
      } catch (e) {
        if (!isMetalError(e) || !['invalid', 'forbidden', 'gone'].includes(e.kind)) throw e;
        last = e;
      }
    }
    const message = `the Metal API refused the device: ${last?.message ?? 'no answer'}`;
    pass.set({
      type: INSTANCE_READY,
      status: 'False',
      reason: REASON.createRejected,
      message,
      severity: 'Warning',
    });
    await this.d.store.event(pm, 'Warning', REASON.createRejected, message);
    return undefined;
  }

  private async deleteDevice(id: string): Promise<void> {
    try {
      await this.d.metal.deleteDevice(id, { force_delete: true });
    } catch (e) {
      // Already gone, or never provisioned (the API answers 403 for a failed device): nothing to delete.
      if (isMetalError(e, 'gone') || isMetalError(e, 'forbidden')) return;
      throw e;
    }
  }
}

/**
 * The status a pass builds up: conditions set one by one (transition times kept), `Ready` mirroring
 * `InstanceReady`, fields patched; written once, only when something changed.
 */
export class StatusPass {
  private readonly base: PacketMachineStatus;
  private conditions: CapiCondition[];
  private fields: Partial<PacketMachineStatus> = {};
  private dirty = false;

  constructor(
    pm: PacketMachine,
    readonly now: Date,
  ) {
    this.base = pm.status ?? {};
    this.conditions = [...(pm.status?.conditions ?? [])];
  }

  set(c: ConditionUpdate): void {
    const before = JSON.stringify(this.conditions);
    const next = {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      severity: c.severity ?? '',
    };
    this.conditions = setCondition<CapiCondition>(this.conditions, next, this.now, { lastUpdateTime: false });
    if (c.type === INSTANCE_READY) {
      this.conditions = setCondition<CapiCondition>(this.conditions, { ...next, type: READY }, this.now, {
        lastUpdateTime: false,
      });
    }
    if (JSON.stringify(this.conditions) !== before) this.dirty = true;
  }

  patch(fields: Partial<PacketMachineStatus>): void {
    for (const [k, v] of Object.entries(fields)) {
      const key = k as keyof PacketMachineStatus;
      if (JSON.stringify(this.base[key]) !== JSON.stringify(v)) this.dirty = true;
      (this.fields as Record<string, unknown>)[key] = v;
    }
  }

  changed(): boolean {
    return this.dirty;
  }

  status(): Record<string, unknown> {
    return { ...this.fields, conditions: this.conditions };
  }
}
