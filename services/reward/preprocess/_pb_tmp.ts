import { formatPreprocessBench, runPreprocessBench } from "./bench.ts";
console.log(formatPreprocessBench(runPreprocessBench({ rounds: 7, perRound: 2 })));
