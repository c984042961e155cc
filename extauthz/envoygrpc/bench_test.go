package envoygrpc

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
)

// noopServer allows everything without looking: the baseline.
type noopServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{}}, nil
}

func benchRequest(b *testing.B) *authv3.CheckRequest {
	data, err := os.ReadFile("../../bench/rbac/checkrequest.json")
	if err != nil {
		b.Fatal(err)
	}
	var cr authv3.CheckRequest
	if err := protojson.Unmarshal(data, &cr); err != nil {
		b.Fatal(err)
	}
	return &cr
}

func runClients(b *testing.B, addr string, cr *authv3.CheckRequest) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	if resp, err := client.Check(context.Background(), cr); err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
		b.Fatalf("the benchmark request is not allowed: %v %v", resp, err)
	}
	b.ReportAllocs()
	b.SetParallelism(25)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Check(context.Background(), cr); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoopback runs Check over loopback gRPC, client and server in
// one process, for the no-op baseline and for mcpauthz with the RBAC
// bundle: the ratio of the two is what deciding costs on the wire.
func BenchmarkLoopback(b *testing.B) {
	cr := benchRequest(b)
	b.Run("noop", func(b *testing.B) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := grpc.NewServer()
		authv3.RegisterAuthorizationServer(s, noopServer{})
		go s.Serve(lis)
		defer s.Stop()
		runClients(b, lis.Addr().String(), cr)
	})
	b.Run("mcpauthz", func(b *testing.B) {
		engine, err := bundles.NewEngine(bundles.DefaultDecisionPath)
		if err != nil {
			b.Fatal(err)
		}
		bundle, err := bundles.LoadPath("../../bench/rbac")
		if err != nil {
			b.Fatal(err)
		}
		if err := engine.Activate(context.Background(), bundle, "rbac"); err != nil {
			b.Fatal(err)
		}
		ids, _ := extauthz.NewDecisionIDs(rand.Reader)
		authz := extauthz.NewAuthorizer(policy.NewEvaluator(engine), ids.Next)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		l := NewListener(lis, NewService(authz, discard), Config{}, discard)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go l.Run(ctx)
		runClients(b, lis.Addr().String(), cr)
	})
}
