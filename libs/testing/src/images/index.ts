export * from './catalog';
export * from './base';
export * from './build';
export * from './checks-plan';
export * from './checks';
