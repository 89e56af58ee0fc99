export * from './errors';
export * from './logger';
export * from './metrics';
export * from './server';
export * from './shutdown';
export * from './options';
export * from './main';
export * from './backoff';
