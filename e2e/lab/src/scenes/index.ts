/** Every scene, in start order: importing a scene module registers it. Later apps add theirs here. */
import './clusters';
import './tower';
import './pod-gateway';
import './connector';
import './kilo';
import './capi';
