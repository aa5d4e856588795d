#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startCollector } from './service';

runService('collector', startCollector);
