export * from './agent-connection';
export * from './hostkey';
export * from './pipe';
export * from './protocol';
export * from './ssh';
export * from './ws';
export * from './status';
