#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startComparator } from './service';

runService('comparator', startComparator);
