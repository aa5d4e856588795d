#!/usr/bin/env node
import { runService } from '@tapio/runtime';
import { startActions } from './service';

runService('actions', startActions);
