export * from './errors';
export * from './network';
export * from './pki';
export * from './token';
export * from './control-plane-files';
export * from './kubeadm-config';
export * from './node-script';
export * from './userdata';
