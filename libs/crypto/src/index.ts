export * from './tokens';
export * from './wireguard';
export * from './pki';
export * from './kubeconfig';
