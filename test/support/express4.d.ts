/** Express 4, installed as `express4` beside Express 5: close enough to Express 5's types for tests. */
declare module 'express4' {
  import express from 'express';
  export default express;
}
