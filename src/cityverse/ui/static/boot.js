import"./chunk-ONTSB4V3.js";
