export * from './crds';
export * from './tags';
export * from './types';
