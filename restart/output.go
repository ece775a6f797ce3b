package restart

// maxLine is the longest line written in one piece; longer lines are split
// so that one program cannot make respawnd buffer without bound.
const maxLine = 64 << 10
