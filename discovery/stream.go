package discovery

import (
	"context"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// ProduceStream opens a log.v1 ProduceStream on the leader: every request
// sent on it is answered, in order, with the offset its record committed at.
// The stream waits (within ctx) for a leader to be ready. Like Produce, a
// stream that breaks is not resumed: the records in flight may or may not be
// in the log. Cancel ctx or close the sending side to end it.
func (c *Client) ProduceStream(ctx context.Context) (logv1.Log_ProduceStreamClient, error) {
	return c.log.ProduceStream(ctx, waitReady)
}
