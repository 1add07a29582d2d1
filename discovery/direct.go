package discovery

import (
	"fmt"

	"google.golang.org/grpc"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
)

// ServerClient is a connection to one server, not through the resolver and
// picker: every call goes to that server and is answered from its own log.
// Tools that compare servers with each other (proglogctl verify) use it;
// ordinary clients use Client.
type ServerClient struct {
	logv1.LogClient
	conn *grpc.ClientConn
}

// DialServer connects to the one server at addr (an RpcAddr that Servers
// lists) with the client's credentials and dial options, ConnectTo
// included. Calls fail at once while the server cannot be reached, rather
// than waiting for it. Close the ServerClient when done.
func (c *Client) DialServer(addr string) (*ServerClient, error) {
	conn, err := dialServer(addr, c.creds, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("discovery: dial %s: %w", addr, err)
	}
	return &ServerClient{LogClient: logv1.NewLogClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (s *ServerClient) Close() error { return s.conn.Close() }
