import"./chunk-J5ZBGZ6T.js";
