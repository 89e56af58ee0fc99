/**
 * Every scene, in start order: importing a scene module registers it. Later apps add theirs here. A
 * scene on the node (`--with-node`) comes right after its namesake.
 */
import './clusters';
import './node';
import './tower';
import './tower-node';
import './pod-gateway';
import './pod-gateway-node';
import './connector';
import './kilo';
import './capi';
