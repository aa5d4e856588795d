#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startDedup } from './service';

runService('dedup', startDedup);
