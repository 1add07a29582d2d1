package logv1

// Error details. A server's refusal that certainly appended nothing carries a
// google.rpc.ErrorInfo with Domain ErrorDomain and Reason ReasonNotAppended, so
// a client may send the same write again (to the leader it learns of next)
// without risking a duplicate. An UNAVAILABLE without it, such as a leader
// change while the write was committing, leaves the outcome unknown.
const (
	ErrorDomain       = "proglog"
	ReasonNotAppended = "NOT_APPENDED"
)
