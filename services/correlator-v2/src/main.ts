#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startCorrelatorV2 } from './service';

runService('correlator-v2', startCorrelatorV2);
