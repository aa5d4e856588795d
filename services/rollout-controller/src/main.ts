#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startRolloutController } from './service';

runService('rollout-controller', startRolloutController);
