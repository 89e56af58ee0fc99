/** What went wrong, for callers that branch (a condition reason, retry or not); never parse the message. */
export type BootstrapErrorKind =
  /** An input is malformed (a name, CIDR, endpoint, version, token); fix the spec. */
  | 'invalid-input'
  /** The Kubernetes version is outside the range the rendered kubeadm v1beta4 config supports. */
  | 'unsupported-version'
  /** A join-control-plane machine needs its addresses for its etcd and API server certificates. */
  | 'node-addresses-required'
  /** An existing per-cluster Secret is unusable (bad PEM, key not matching, key missing). */
  | 'invalid-secret';

/**
 * A one-line error from the bootstrap renderer: what, where and how to fix. Messages never carry
 * key or token material.
 */
export class BootstrapError extends Error {
  constructor(
    readonly kind: BootstrapErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'BootstrapError';
  }
}
