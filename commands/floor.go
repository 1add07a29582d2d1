package commands

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	logv1 "github.com/proglogctl/proglogctl/api/v1"
	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/discovery"
	"github.com/proglogctl/proglogctl/node"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// floorMaxBytes bounds the record bytes a floor holds: a bench is bounded in
// count and time, and the floor in memory.
const floorMaxBytes = 1 << 30

// floorServer is the bench floor: the log.v1 service over records held in
// memory, with no Raft, no disk and no ACL, served by a gRPC server with the
// TLS a node's server has (the same certificates, certs.ServerTLSConfig and
// message size limit). What `bench` measures against it is what gRPC and TLS
// cost on the machine, so a cluster's figure can be given as a ratio to it.
//
// It answers like a single node that leads a cluster of one: every record it
// accepts is "committed" at once. It is not a second implementation of node's
// service: no forwarding, read index or authorization, only what the bench
// client calls. Status codes follow node's for the few errors it has.
//
// mu guards the records (data, ends) and grown; reads copy nothing: data is
// only ever appended to, so a slice of it stays valid after a later append
// moved it. The gRPC server owns its goroutines; Close stops them.
type floorServer struct {
	logv1.UnimplementedLogServer
	addr       string
	grpc       *grpc.Server
	served     chan struct{} // closed when Serve returned
	maxRecord  int
	batchBytes int

	mu    sync.Mutex
	data  []byte        // the records' values, back to back
	ends  []int         // ends[off] is the end of record off in data
	grown chan struct{} // closed, and replaced, by each append
}

var _ logv1.LogServer = (*floorServer)(nil)

// floorID names the floor in GetServers.
const floorID = "floor"

// startFloor serves a floor on a free loopback port with a local cluster's
// certificates, made in a temporary directory that Close removes.
func startFloor() (_ *localCluster, err error) {
	lc, pki, err := newLocalDir("proglog-floor-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, lc.Close())
		}
	}()
	serverTLS, err := certs.ServerTLSConfig(pki.node)
	if err != nil {
		return nil, err
	}
	if lc.floor, err = newFloorServer(devAddr(0, 0), serverTLS, raftfsm.DefaultConfig().MaxRecordBytes(), node.DefaultConfig().ConsumeBatchBytes); err != nil {
		return nil, err
	}
	lc.client = pki.client
	lc.target = discovery.Scheme + "://" + lc.floor.addr
	return lc, nil
}

// serveFloor serves a floor on addr with the config directory's node
// certificate until the command is interrupted.
func serveFloor(c *cli.Context, addr string) error {
	dir, err := configDir(c)
	if err != nil {
		return err
	}
	serverTLS, err := certs.ServerTLSConfig(certs.TLSFiles{
		CertFile: filepath.Join(dir, certs.NodeCertFileName),
		KeyFile:  filepath.Join(dir, certs.NodeKeyFileName),
		CAFile:   filepath.Join(dir, certs.CACertFileName),
	})
	if err != nil {
		return fmt.Errorf("bench floor: %w", err)
	}
	f, err := newFloorServer(addr, serverTLS, raftfsm.DefaultConfig().MaxRecordBytes(), node.DefaultConfig().ConsumeBatchBytes)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "serving the floor on %s until interrupted\n", f.addr)
	<-c.Context.Done()
	f.Close()
	return nil
}

// newFloorServer listens on addr and serves the floor with serverTLS; a
// record may have maxRecord bytes, a consumed batch batchBytes.
func newFloorServer(addr string, serverTLS *tls.Config, maxRecord, batchBytes int) (*floorServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench floor: %w", err)
	}
	f := &floorServer{
		addr:       ln.Addr().String(),
		served:     make(chan struct{}),
		maxRecord:  maxRecord,
		batchBytes: batchBytes,
		grown:      make(chan struct{}),
	}
	f.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.MaxRecvMsgSize(discovery.MessageBytes(maxRecord)),
	)
	logv1.RegisterLogServer(f.grpc, f)
	go func() {
		defer close(f.served)
		f.grpc.Serve(ln)
	}()
	return f, nil
}

// Close stops the server: calls in progress end, and Close waits for them.
func (f *floorServer) Close() {
	f.grpc.Stop()
	<-f.served
}

// append stores recs and returns the offset of the first.
func (f *floorServer) append(recs ...[]byte) (uint64, error) {
	n := 0
	for i, r := range recs {
		if len(r) > f.maxRecord {
			return 0, status.Errorf(codes.InvalidArgument, "record %d has %d bytes, more than the %d a record may have", i, len(r), f.maxRecord)
		}
		n += len(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.data)+n > floorMaxBytes {
		return 0, status.Errorf(codes.ResourceExhausted, "the bench floor holds at most %d bytes of records", floorMaxBytes)
	}
	first := uint64(len(f.ends))
	for _, r := range recs {
		f.data = append(f.data, r...)
		f.ends = append(f.ends, len(f.data))
	}
	close(f.grown)
	f.grown = make(chan struct{})
	return first, nil
}

// read returns records from off on, at most maxBytes of them but at least
// one, the next offset, and a channel closed when more records arrive.
func (f *floorServer) read(off uint64, maxBytes int) (recs [][]byte, next uint64, grown <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next = uint64(len(f.ends))
	size := 0
	for o := off; o < next; o++ {
		start := 0
		if o > 0 {
			start = f.ends[o-1]
		}
		v := f.data[start:f.ends[o]:f.ends[o]]
		if len(recs) > 0 && size+len(v) > maxBytes {
			break
		}
		recs, size = append(recs, v), size+len(v)
	}
	return recs, next, f.grown
}

func (f *floorServer) outOfRange(off, next uint64) error {
	return status.Errorf(codes.OutOfRange, "offset %d is out of range: the log holds offsets 0 to %d", off, int64(next)-1)
}

func (f *floorServer) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	if req.GetRecord() == nil {
		return nil, status.Error(codes.InvalidArgument, "no record")
	}
	off, err := f.append(req.Record.Value)
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceResponse{Offset: off}, nil
}

func (f *floorServer) ProduceBatch(ctx context.Context, req *logv1.ProduceBatchRequest) (*logv1.ProduceBatchResponse, error) {
	if len(req.GetRecords()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "a batch needs at least one record")
	}
	recs := make([][]byte, len(req.Records))
	for i, r := range req.Records {
		if r == nil {
			return nil, status.Errorf(codes.InvalidArgument, "record %d is missing", i)
		}
		recs[i] = r.Value
	}
	first, err := f.append(recs...)
	if err != nil {
		return nil, err
	}
	return &logv1.ProduceBatchResponse{FirstOffset: first, Count: uint32(len(recs))}, nil
}

// ProduceStream answers each request in order as it is read.
func (f *floorServer) ProduceStream(stream logv1.Log_ProduceStreamServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetRecord() == nil {
			return status.Error(codes.InvalidArgument, "no record")
		}
		off, err := f.append(req.Record.Value)
		if err != nil {
			return err
		}
		if err := stream.Send(&logv1.ProduceResponse{Offset: off}); err != nil {
			return err
		}
	}
}

func (f *floorServer) Consume(ctx context.Context, req *logv1.ConsumeRequest) (*logv1.ConsumeResponse, error) {
	recs, next, _ := f.read(req.Offset, 1)
	if len(recs) == 0 {
		return nil, f.outOfRange(req.Offset, next)
	}
	return &logv1.ConsumeResponse{Record: &logv1.Record{Value: recs[0], Offset: req.Offset}}, nil
}

// follow sends records from off on in batches of at most maxBytes until end
// (0: none); at the end of the log it waits for more when wait is set, and
// returns otherwise.
func (f *floorServer) follow(ctx context.Context, off, end uint64, maxBytes int, wait bool, send func(first uint64, recs [][]byte) error) error {
	for end == 0 || off < end {
		recs, next, grown := f.read(off, maxBytes)
		if len(recs) == 0 {
			if !wait {
				if off > next {
					return f.outOfRange(off, next)
				}
				return nil
			}
			select {
			case <-grown:
				continue
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		if end != 0 && uint64(len(recs)) > end-off {
			recs = recs[:end-off]
		}
		if err := send(off, recs); err != nil {
			return err
		}
		off += uint64(len(recs))
	}
	return nil
}

func (f *floorServer) ConsumeStream(req *logv1.ConsumeRequest, stream logv1.Log_ConsumeStreamServer) error {
	return f.follow(stream.Context(), req.Offset, 0, f.batchBytes, true, func(first uint64, recs [][]byte) error {
		for i, v := range recs {
			if err := stream.Send(&logv1.ConsumeResponse{Record: &logv1.Record{Value: v, Offset: first + uint64(i)}}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (f *floorServer) ConsumeBatchStream(req *logv1.ConsumeBatchRequest, stream logv1.Log_ConsumeBatchStreamServer) error {
	if req.EndOffset != 0 && req.EndOffset <= req.Offset {
		return nil
	}
	budget := f.batchBytes
	if req.MaxBytes != 0 && int(req.MaxBytes) < budget {
		budget = int(req.MaxBytes)
	}
	return f.follow(stream.Context(), req.Offset, req.EndOffset, budget, req.Follow, func(first uint64, recs [][]byte) error {
		msg := &logv1.ConsumeBatchResponse{Records: make([]*logv1.Record, len(recs))}
		for i, v := range recs {
			msg.Records[i] = &logv1.Record{Value: v, Offset: first + uint64(i)}
		}
		return stream.Send(msg)
	})
}

func (f *floorServer) next() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.ends))
}

func (f *floorServer) GetServers(ctx context.Context, req *logv1.GetServersRequest) (*logv1.GetServersResponse, error) {
	self := &logv1.Server{Id: floorID, RpcAddr: f.addr, IsLeader: true, IsVoter: true, State: "Leader", NextOffset: f.next()}
	return &logv1.GetServersResponse{Servers: []*logv1.Server{self}, Self: self}, nil
}

func (f *floorServer) GetOffsets(ctx context.Context, req *logv1.GetOffsetsRequest) (*logv1.GetOffsetsResponse, error) {
	return &logv1.GetOffsetsResponse{NextOffset: f.next()}, nil
}
