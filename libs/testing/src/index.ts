export * from './bundle';
export * from './controlplane';
export * from './workspace';
export * from './netns';
